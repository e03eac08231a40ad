//===- CPUCodegen.cpp - Vector code for the fused expert tiles --*- C++ -*-===//
//
// This file implements the CPU codegen of the fused expert tiles as two
// transform-dialect scripts applied by a pass: block each marked
// contraction's reduction by KC (a right-hand-side panel stays in L1), tile
// it to 4 x 16 register blocks with 4-deep reduction steps and vectorize it
// (on tensors); then hoist the accumulator transfers out of the reduction
// loop and lower the contractions to outer products, i.e. FMAs on 8-wide
// vectors (on buffers).
//
//===----------------------------------------------------------------------===//

#include "moe/Pipelines/CPUCodegen.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Transform/IR/TransformDialect.h"
#include "mlir/Dialect/Transform/Transforms/TransformInterpreterUtils.h"
#include "mlir/Dialect/Vector/Transforms/LoweringPatterns.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <set>

namespace mlir::moe {
#define GEN_PASS_DEF_CPUCODEGEN
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

/// The reduction depths a contraction's K loop is blocked by, largest
/// first: a 16-column panel of the right-hand side, KC rows deep, stays in
/// L1 (KC = 256: 16 KiB) while every 4-row block of the tile sweeps it.
constexpr int64_t kReductionBlocks[] = {256, 128, 64, 32, 16, 8, 4};

/// Tiles of at most kFewRows rows (decode, small experts) reuse a weight
/// panel too little to keep it in L1; they stream the weights once, and a
/// shallow reduction block reads each of its weight rows sequentially
/// across the column strips instead of hopping over KC rows (KC pages)
/// per strip. Measured on the decode shapes: 2.2-2.5x faster than KC = 256.
constexpr int64_t kFewRows = 8;
constexpr int64_t kFewRowsReductionBlock = 8;

/// Builds the script that tiles and vectorizes the contractions the fused
/// lowering marked, each marked with its column panel per thread
/// (moe.expert_split = S) and its reduction block (moe.expert_tile = KC):
/// the left-hand tile is transposed first (so that a reduction step reads
/// its 4 rows' values contiguously, without shuffles), then an scf.forall
/// over panels of S columns (one per thread), K blocks of KC, 16-column
/// strips, 4-row blocks and 4-deep reduction steps, each step a
/// 4 x 16 x 4 vector.contract.
std::string
buildVectorizeScript(const std::set<std::pair<int64_t, int64_t>> &blocks) {
  std::string script = R"mlir(
module attributes {transform.with_named_sequence} {
  transform.named_sequence @__transform_main(%root: !transform.any_op {transform.readonly}) {
)mlir";
  int64_t index = 0;
  for (auto [split, kc] : blocks) {
    std::string n = std::to_string(index++);
    std::string s = std::to_string(split), k = std::to_string(kc);
    script += "    %mm" + n +
              " = transform.structured.match ops{[\"linalg.matmul\"]} "
              "attributes {moe.expert_split = " +
              s + " : i64, moe.expert_tile = " + k + R"mlir( : i64} in %root
        : (!transform.any_op) -> !transform.any_op
    transform.foreach %mm)mlir" +
              n + R"mlir( : !transform.any_op {
    ^bb0(%mm: !transform.any_op):
      %mmt = transform.structured.transpose_matmul %mm <lhs> : (!transform.any_op) -> !transform.any_op
      %panel, %forall = transform.structured.tile_using_forall %mmt tile_sizes [0, )mlir" +
              s + R"mlir(]
          : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
      %blocked, %k0 = transform.structured.tile_using_for %panel tile_sizes [0, 0, )mlir" +
              k + R"mlir(]
          : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
      %tile, %j, %i, %k = transform.structured.tile_using_for %blocked tile_sizes [4, 16, 4] interchange = [1, 0, 2]
          : (!transform.any_op) -> (!transform.any_op, !transform.any_op, !transform.any_op, !transform.any_op)
      transform.structured.vectorize %tile : !transform.any_op
    }
)mlir";
  }
  script += R"mlir(
    %funcs = transform.structured.match ops{["func.func"]} in %root : (!transform.any_op) -> !transform.any_op
    transform.apply_patterns to %funcs {
      transform.apply_patterns.vector.reduction_to_contract
      transform.apply_patterns.vector.transfer_permutation_patterns
      transform.apply_patterns.canonicalization
    } : !transform.any_op
    transform.yield
  }
}
)mlir";
  return script;
}

/// Keeps accumulators in registers and lowers contractions to FMAs.
constexpr const char *kLowerScript = R"mlir(
module attributes {transform.with_named_sequence} {
  transform.named_sequence @__transform_main(%root: !transform.any_op {transform.readonly}) {
    %funcs = transform.structured.match ops{["func.func"]} in %root : (!transform.any_op) -> !transform.any_op
    // Hoisting skips transfers on views (and tiling on tensors made the
    // accumulator's subview inside the reduction loop): fold the subviews
    // into the transfers' indices, so that the accumulator stays in
    // registers across the reduction rather than being stored and reloaded
    // at every step.
    transform.apply_cse to %funcs : !transform.any_op
    transform.apply_patterns to %funcs {
      transform.apply_patterns.memref.fold_memref_alias_ops
      transform.apply_patterns.canonicalization
    } : !transform.any_op
    // The folded read and write compute equal indices separately; they must
    // be the same values to match.
    transform.apply_cse to %funcs : !transform.any_op
    %loops = transform.structured.match ops{["scf.for"]} in %root : (!transform.any_op) -> !transform.any_op
    transform.apply_licm to %loops : !transform.any_op
    %hoisted = transform.structured.hoist_redundant_vector_transfers %funcs
        : (!transform.any_op) -> !transform.any_op
    transform.apply_patterns to %hoisted {
      transform.apply_patterns.vector.lower_contraction lowering_strategy = "outerproduct"
      transform.apply_patterns.vector.lower_outerproduct
      transform.apply_patterns.canonicalization
    } : !transform.any_op
    transform.yield
  }
}
)mlir";

/// Lowers what is left of the vector ops to 1-D loads, stores and FMAs.
constexpr const char *kLowerTransfersScript = R"mlir(
module attributes {transform.with_named_sequence} {
  transform.named_sequence @__transform_main(%root: !transform.any_op {transform.readonly}) {
    %funcs = transform.structured.match ops{["func.func"]} in %root : (!transform.any_op) -> !transform.any_op
    transform.apply_patterns to %funcs {
      transform.apply_patterns.vector.transfer_permutation_patterns
      transform.apply_patterns.vector.lower_transfer max_transfer_rank = 1
      transform.apply_patterns.vector.lower_transpose
      transform.apply_patterns.vector.lower_shape_cast
      transform.apply_patterns.vector.lower_broadcast
      transform.apply_patterns.canonicalization
    } : !transform.any_op
    transform.yield
  }
}
)mlir";

/// Runs the transform script `text` on `root`.
static LogicalResult runScript(ModuleOp root, StringRef text) {
  OwningOpRef<ModuleOp> library = parseSourceString<ModuleOp>(
      text, ParserConfig(root.getContext()), "moe-cpu-codegen");
  if (!library)
    return root.emitError("moe-cpu-codegen: cannot parse its script");
  Operation *entry = transform::detail::findTransformEntryPoint(
      root, *library, "__transform_main");
  if (!entry)
    return failure();
  return transform::applyTransformNamedSequence(root, entry, *library,
                                                transform::TransformOptions());
}

struct CPUCodegenPass : moe::impl::CPUCodegenBase<CPUCodegenPass> {
  using Base::Base;

  void runOnOperation() override {
    if (threads < 1 || threads > 1024) {
      getOperation()->emitError("moe-cpu-codegen: threads must be in "
                                "[1, 1024], got ")
          << static_cast<int64_t>(threads);
      return signalPassFailure();
    }
    // Only contractions that tile exactly into register blocks are
    // vectorized (the others keep their scalar loops); each gets the
    // largest reduction block that divides its K (at most
    // kFewRowsReductionBlock for few rows), and its columns are split
    // into one panel per thread when they divide evenly.
    std::set<std::pair<int64_t, int64_t>> blocks;
    if (stage == moe::CPUCodegenStage::Vectorize)
      getOperation()->walk([&](linalg::MatmulOp matmul) {
        if (!matmul->hasAttr("moe.expert_tile"))
          return;
        matmul->removeAttr("moe.expert_tile");
        SmallVector<int64_t> ranges = matmul.getStaticLoopRanges();
        const int64_t block[] = {4, 16, 4};
        for (auto [range, size] : llvm::zip(ranges, block))
          if (ShapedType::isDynamic(range) || range % size != 0)
            return;
        int64_t split = ranges[1];
        if (threads > 1 && ranges[1] % (16 * threads) == 0)
          split = ranges[1] / threads;
        auto i64 = IntegerType::get(&getContext(), 64);
        int64_t kcMax = ranges[0] <= kFewRows ? kFewRowsReductionBlock
                                              : kReductionBlocks[0];
        for (int64_t kc : kReductionBlocks)
          if (ranges[2] % kc == 0 && kc <= kcMax) {
            matmul->setAttr("moe.expert_tile", IntegerAttr::get(i64, kc));
            matmul->setAttr("moe.expert_split", IntegerAttr::get(i64, split));
            blocks.insert({split, kc});
            return;
          }
      });
    if (stage == moe::CPUCodegenStage::Vectorize) {
      if (failed(runScript(getOperation(), buildVectorizeScript(blocks))))
        signalPassFailure();
      return;
    }
    if (failed(runScript(getOperation(), kLowerScript)))
      return signalPassFailure();
    // The outer products take the left-hand elements one by one: read each
    // with a scalar load (a broadcast from memory) rather than loading the
    // block's row as a vector and extracting from it, which needs shuffles
    // and registers (a 6-element row is loaded in two parts).
    RewritePatternSet scalarLoads(&getContext());
    vector::populateScalarVectorTransferLoweringPatterns(
        scalarLoads, /*benefit=*/1, /*allowMultipleUses=*/true);
    if (failed(applyPatternsGreedily(getOperation(), std::move(scalarLoads))) ||
        failed(runScript(getOperation(), kLowerTransfersScript)))
      signalPassFailure();
  }
};

} // namespace

std::unique_ptr<Pass> mlir::moe::createCPUCodegenPass(CPUCodegenStage stage,
                                                      int64_t threads) {
  CPUCodegenOptions options;
  options.stage = stage;
  options.threads = threads;
  return createCPUCodegen(options);
}
