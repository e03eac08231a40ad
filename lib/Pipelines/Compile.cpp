//===- Compile.cpp - Running pipelines and building libraries ---*- C++ -*-===//
//
// This file implements runPipeline (diagnostics captured into a string) and
// compileToSharedLibrary (moe-cpu-pipeline, translation to LLVM IR, clang).
//
//===----------------------------------------------------------------------===//

#include "moe/Pipelines/Compile.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/OpenMP/OpenMPToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>

using namespace mlir;

namespace {
/// Collects the diagnostics of a context into a string while alive.
class CapturedDiagnostics {
public:
  CapturedDiagnostics(MLIRContext *context, std::string &text)
      : os(text), handler(context, [this](Diagnostic &diag) {
          os << diag.getLocation() << ": ";
          switch (diag.getSeverity()) {
          case DiagnosticSeverity::Error:
            os << "error: ";
            break;
          case DiagnosticSeverity::Warning:
            os << "warning: ";
            break;
          case DiagnosticSeverity::Remark:
            os << "remark: ";
            break;
          case DiagnosticSeverity::Note:
            os << "note: ";
            break;
          }
          os << diag << "\n";
          for (Diagnostic &note : diag.getNotes())
            os << note.getLocation() << ": note: " << note << "\n";
          return success();
        }) {}

private:
  llvm::raw_string_ostream os;
  ScopedDiagnosticHandler handler;
};
} // namespace

LogicalResult mlir::moe::runPipeline(ModuleOp module, StringRef pipeline,
                                     std::string &diagnostics) {
  CapturedDiagnostics capture(module.getContext(), diagnostics);
  // The pipeline text names its anchor ("builtin.module(...)"); a bare
  // list of passes runs on the module.
  std::string text = pipeline.trim().str();
  StringRef anchored(text);
  if (!anchored.starts_with("builtin.module(") && !anchored.starts_with("any("))
    text = "builtin.module(" + text + ")";
  std::string parseErrors;
  llvm::raw_string_ostream errorStream(parseErrors);
  FailureOr<OpPassManager> parsed = parsePassPipeline(text, errorStream);
  if (failed(parsed)) {
    diagnostics += "error: invalid pass pipeline '" + pipeline.str() +
                   "': " + parseErrors + "\n";
    return failure();
  }
  PassManager pm(module.getContext(), parsed->getOpAnchorName());
  static_cast<OpPassManager &>(pm) = std::move(*parsed);
  return pm.run(module);
}

/// The clang that builds the shared library.
static std::string findClang() {
  if (const char *env = std::getenv("MOE_CLANG"))
    return env;
  for (StringRef name : {"clang-22", "clang"})
    if (llvm::ErrorOr<std::string> path = llvm::sys::findProgramByName(name))
      return *path;
  return MOE_LLVM_TOOLS_DIR "/clang";
}

LogicalResult mlir::moe::compileToSharedLibrary(
    ModuleOp module, const CPUPipelineOptions &options, StringRef outputPath,
    std::string &diagnostics) {
  MLIRContext *context = module.getContext();
  std::string optionError;
  if (failed(verifyCPUPipelineOptions(options, optionError))) {
    diagnostics +=
        "error: invalid options for 'moe-cpu-pipeline': " + optionError + "\n";
    return failure();
  }
  {
    CapturedDiagnostics capture(context, diagnostics);
    PassManager pm(context, ModuleOp::getOperationName());
    buildCPUPipeline(pm, options);
    if (failed(pm.run(module)))
      return failure();
  }

  DialectRegistry registry;
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  registerOpenMPDialectTranslation(registry);
  context->appendDialectRegistry(registry);
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule;
  {
    CapturedDiagnostics capture(context, diagnostics);
    llvmModule = translateModuleToLLVMIR(module, llvmContext);
  }
  if (!llvmModule) {
    diagnostics += "error: cannot translate the lowered module to LLVM IR\n";
    return failure();
  }

  SmallString<128> irPath;
  int fd;
  if (std::error_code ec =
          llvm::sys::fs::createTemporaryFile("moe-layer", "ll", fd, irPath)) {
    diagnostics += "error: cannot create a temporary file: " + ec.message();
    return failure();
  }
  llvm::FileRemover removeIR(irPath);
  {
    llvm::raw_fd_ostream os(fd, /*shouldClose=*/true);
    llvmModule->print(os, nullptr);
  }

  std::string clang = findClang();
  std::string runtimeDir = MOE_LLVM_LIBRARY_DIR;
  // The CPU the micro-kernels were chosen for (target-cpu, default the
  // host's widest vectors); $MOE_MARCH overrides it.
  std::string targetCpu = options.targetCpu;
  const char *march = std::getenv("MOE_MARCH");
  if (!march && !targetCpu.empty())
    march = targetCpu.c_str();
  // -fno-unroll-loops: the pipeline unrolled the kernels already; LLVM's
  // unroller took 3.5x the compile time for no measured run-time gain.
  SmallVector<std::string> args = {clang,
                                   "-O3",
                                   "-fno-unroll-loops",
                                   std::string("-march=") +
                                       (march ? march : "native"),
                                   "-shared",
                                   "-fPIC",
                                   "-Wno-override-module",
                                   std::string(irPath),
                                   "-o",
                                   outputPath.str(),
                                   "-L" + runtimeDir,
                                   "-lmlir_c_runner_utils",
                                   "-lomp",
                                   "-Wl,-rpath," + runtimeDir,
                                   "-lm"};
  SmallVector<StringRef> argRefs(args.begin(), args.end());
  SmallString<128> logPath;
  llvm::sys::fs::createTemporaryFile("moe-clang", "log", logPath);
  llvm::FileRemover removeLog(logPath);
  std::optional<StringRef> redirects[] = {std::nullopt, StringRef(logPath),
                                          StringRef(logPath)};
  std::string error;
  int status = llvm::sys::ExecuteAndWait(clang, argRefs, std::nullopt,
                                         redirects, 0, 0, &error);
  if (status != 0) {
    auto log = llvm::MemoryBuffer::getFile(logPath);
    diagnostics += "error: " + clang + " failed" +
                   (error.empty() ? "" : " (" + error + ")") + ":\n" +
                   (log ? (*log)->getBuffer().str() : std::string()) + "\n";
    return failure();
  }
  return success();
}
