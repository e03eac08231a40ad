//===- DumpGPUObjects.cpp - moe-dump-gpu-objects ----------------*- C++ -*-===//
//
// This file writes the objects embedded in gpu.binary ops to files, so that
// the PTX can be read and checked with ptxas without a GPU.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/LoopsToGPU/LoopsToGPU.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

namespace mlir::moe {
#define GEN_PASS_DEF_DUMPGPUOBJECTS
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {
struct DumpGPUObjectsPass : moe::impl::DumpGPUObjectsBase<DumpGPUObjectsPass> {
  using Base::Base;

  void runOnOperation() override {
    if (std::error_code error = llvm::sys::fs::create_directories(dir)) {
      getOperation()->emitError("moe-dump-gpu-objects: cannot create '")
          << dir << "': " << error.message();
      return signalPassFailure();
    }
    getOperation()->walk([&](gpu::BinaryOp binary) {
      for (Attribute attr : binary.getObjects()) {
        auto object = cast<gpu::ObjectAttr>(attr);
        std::string chip = "target";
        if (auto nvvm = dyn_cast<NVVM::NVVMTargetAttr>(object.getTarget()))
          chip = nvvm.getChip().str();
        StringRef ext = "bin";
        switch (object.getFormat()) {
        case gpu::CompilationTarget::Assembly:
          ext = "ptx";
          break;
        case gpu::CompilationTarget::Binary:
          ext = "cubin";
          break;
        case gpu::CompilationTarget::Fatbin:
          ext = "fatbin";
          break;
        case gpu::CompilationTarget::Offload:
          ext = "ll";
          break;
        }
        llvm::SmallString<128> path(dir);
        llvm::sys::path::append(
            path, (binary.getName() + "." + chip + "." + ext).str());
        std::error_code error;
        llvm::raw_fd_ostream os(path, error);
        if (error) {
          binary.emitError("moe-dump-gpu-objects: cannot write '")
              << path << "': " << error.message();
          return signalPassFailure();
        }
        os << object.getObject().getValue();
      }
    });
  }
};
} // namespace
