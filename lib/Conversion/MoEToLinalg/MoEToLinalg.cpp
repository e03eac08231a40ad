//===- MoEToLinalg.cpp - convert-moe-to-linalg ------------------*- C++ -*-===//
//
// This file implements the convert-moe-to-linalg pass: a partial dialect
// conversion with the per-op patterns of this directory.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/MoEToLinalg/MoEToLinalg.h"

#include "Patterns.h"

#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/DialectConversion.h"

namespace mlir::moe {
#define GEN_PASS_DEF_CONVERTMOETOLINALG
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

void mlir::moe::populateMoEToLinalgConversionPatterns(
    RewritePatternSet &patterns, const MoELoweringOptions &options) {
  detail::populateRouteToLinalgPatterns(patterns, options.parallelRouting,
                                        options.warpLanes);
  detail::populateDispatchToLinalgPatterns(patterns);
  detail::populateExpertToLinalgPatterns(patterns, options.expertTileRows);
  detail::populateCombineToLinalgPatterns(patterns, options.combineByToken);
}

LogicalResult mlir::moe::lowerMoEToLinalg(Operation *root,
                                          const MoELoweringOptions &options) {
  MLIRContext *ctx = root->getContext();
  ConversionTarget target(*ctx);
  target.addIllegalDialect<MoEDialect>();
  // The expert body's terminator disappears with its expert.
  target.addLegalOp<YieldOp>();
  target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
  RewritePatternSet patterns(ctx);
  populateMoEToLinalgConversionPatterns(patterns, options);
  return applyPartialConversion(root, target, std::move(patterns));
}

namespace {
struct ConvertMoEToLinalgPass
    : moe::impl::ConvertMoEToLinalgBase<ConvertMoEToLinalgPass> {
  using Base::Base;

  void runOnOperation() override {
    if (expertTileRows < 0 || expertTileRows > 4096) {
      getOperation()->emitError("convert-moe-to-linalg: expert-tile-rows "
                                "must be 0 (whole experts) or in [1, 4096], "
                                "got ")
          << static_cast<int64_t>(expertTileRows);
      return signalPassFailure();
    }
    if (warpLanes < 0 || warpLanes > 32 || (warpLanes & (warpLanes - 1))) {
      getOperation()->emitError("convert-moe-to-linalg: warp-lanes must be 0 "
                                "or a power of two up to 32, got ")
          << static_cast<int64_t>(warpLanes);
      return signalPassFailure();
    }
    MoELoweringOptions options;
    options.expertTileRows = expertTileRows;
    options.combineByToken = combineByToken;
    options.parallelRouting = parallelRouting;
    options.warpLanes = warpLanes;
    if (failed(lowerMoEToLinalg(getOperation(), options)))
      signalPassFailure();
  }
};
} // namespace
