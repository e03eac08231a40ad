//===- embed-moe.cpp - Embedding moe-mlir in a C++ compiler -----*- C++ -*-===//
//
// Builds a token-choice MoE layer with OpBuilder, lowers it with the CPU
// pipeline's C++ builder, and prints the LLVM IR.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/InitAllDialects.h"
#include "moe/Pipelines/Pipelines.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;

int main() {
  DialectRegistry registry;
  moe::registerAllDialects(registry);
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  MLIRContext context(registry);
  context.loadAllAvailableDialects();

  // func @layer(x: [T=8, D=16], logits: [8, E=4], w: [4, 16, 16]) -> [8, 16]
  OpBuilder b(&context);
  Location loc = b.getUnknownLoc();
  auto f32 = b.getF32Type();
  auto xType = RankedTensorType::get({8, 16}, f32);
  auto module = ModuleOp::create(loc);
  b.setInsertionPointToEnd(module.getBody());
  auto func = func::FuncOp::create(
      b, loc, "layer",
      b.getFunctionType({xType, RankedTensorType::get({8, 4}, f32),
                         RankedTensorType::get({4, 16, 16}, f32)},
                        {xType}));
  Block *entry = func.addEntryBlock();
  b.setInsertionPointToStart(entry);
  Value x = entry->getArgument(0), w = entry->getArgument(2);

  // Top-2 routing with capacity 1.0: C = ceil(1.0 * 2 * 8 / 4) = 4.
  auto policy = moe::TokenChoiceAttr::get(&context, /*topK=*/2, 1.0);
  auto route = moe::RouteOp::create(b, loc, policy, entry->getArgument(1));
  auto dispatch =
      moe::DispatchOp::create(b, loc, RankedTensorType::get({4, 4, 16}, f32), x,
                              route.getTokenIds(), Value());
  auto expert = moe::ExpertOp::create(b, loc, dispatch.getType(), dispatch,
                                      Value(), ValueRange{w});
  {
    // One expert: rows [4, 16] times its weight [16, 16].
    OpBuilder::InsertionGuard guard(b);
    auto rowsType = RankedTensorType::get({4, 16}, f32);
    Block *body = b.createBlock(
        &expert.getBody(), {}, {rowsType, RankedTensorType::get({16, 16}, f32)},
        {loc, loc});
    Value zero = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0));
    Value rows = tensor::EmptyOp::create(b, loc, rowsType.getShape(), f32);
    Value init = linalg::FillOp::create(b, loc, zero, rows).getResult(0);
    Value out =
        linalg::MatmulOp::create(
            b, loc, ValueRange{body->getArgument(0), body->getArgument(1)},
            ValueRange{init})
            .getResult(0);
    moe::YieldOp::create(b, loc, out);
  }
  Value zero = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0));
  Value empty = tensor::EmptyOp::create(b, loc, xType.getShape(), f32);
  Value acc = linalg::FillOp::create(b, loc, zero, empty).getResult(0);
  auto combine = moe::CombineOp::create(
      b, loc, xType, expert, route.getTokenIds(), route.getGates(), acc);
  func::ReturnOp::create(b, loc, combine.getResult());
  if (failed(verify(module)))
    return 1;

  PassManager pm(&context, ModuleOp::getOperationName());
  moe::buildCPUPipeline(pm, moe::CPUPipelineOptions());
  if (failed(pm.run(module)))
    return 2;
  llvm::LLVMContext llvmContext;
  auto llvmModule = translateModuleToLLVMIR(module, llvmContext);
  if (!llvmModule)
    return 3;
  llvmModule->print(llvm::outs(), nullptr);
  module->erase();
  return 0;
}
