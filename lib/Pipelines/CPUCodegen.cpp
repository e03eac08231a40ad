//===- CPUCodegen.cpp - Vector code for the fused expert tiles --*- C++ -*-===//
//
// This file implements the CPU codegen of the fused expert tiles with
// upstream's C++ transforms, sized by the target's micro-kernel
// (CPUTarget.h). On tensors: split each marked contraction's columns
// across threads, block its reduction by KC (a right-hand-side panel stays
// in L1), tile it to M0 x N0 x K0 register blocks and vectorize it. On
// buffers: hoist the accumulator transfers out of the reduction loop and
// lower the contractions to outer products, i.e. FMAs on vector registers.
//
//===----------------------------------------------------------------------===//

#include "moe/Pipelines/CPUCodegen.h"

#include "CPUCodegenParts.h"

#include "moe/Conversion/MoEToLinalg/MoEToLinalg.h"
#include "moe/Pipelines/CPUTarget.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Hoisting.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Approximation.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Transforms.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Transforms/TileUsingInterface.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/Vector/Transforms/LoweringPatterns.h"
#include "mlir/Dialect/Vector/Transforms/VectorRewritePatterns.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Transforms/CSE.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "mlir/Transforms/LoopInvariantCodeMotionUtils.h"

namespace mlir::moe {
#define GEN_PASS_DEF_CPUCODEGEN
#include "moe/Pipelines/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe::detail;

/// The reduction blocks tried, largest first.
static constexpr int64_t kReductionBlocks[] = {
    4096, 2048, 1024, 512, 256, 128, 64, 32, 16, 8, 4, 2, 1};

/// Tiles of at most moe::kFewTileRows rows (decode, small experts) reuse a
/// weight panel too little to keep it in L1; they stream the weights once, and
/// a shallow reduction block reads each of its weight rows sequentially across
/// the column strips instead of hopping over KC rows (KC pages) per strip.
/// Measured on the decode shapes: 2.2-2.5x faster than KC = 256.
static constexpr int64_t kFewRowsReductionBlock = 8;

/// The largest of `candidates` that divides `size` and is at most `most`.
static int64_t largestDivisor(int64_t size, ArrayRef<int64_t> candidates,
                              int64_t most) {
  for (int64_t c : candidates)
    if (c <= most && size % c == 0)
      return c;
  return 0;
}

/// Vectorized as they are, f16 and bf16 contractions extend every element on
/// its own (no native FMA), with 30x the code, 5x the compile time and no
/// speed. They keep their scalar loops until the low-precision kernels
/// exist.
bool moe::detail::isF32Contraction(Operation *op) {
  return llvm::all_of(op->getOperandTypes(),
                      [](Type t) { return getElementTypeOrSelf(t).isF32(); });
}

/// A contraction by a packed panel that the f32 register blocks compute:
/// f32 rows and accumulators, and an f32 panel, a bf16 one (whose elements
/// become f32 as they are loaded: a shift, exact) or an i8 one (converted
/// as loaded, exact; its column scales apply after the sum).
static bool isPanelContraction(linalg::LinalgOp op) {
  auto elementOf = [](Value v) { return getElementTypeOrSelf(v.getType()); };
  Type panel = elementOf(op.getDpsInputs()[1]);
  return elementOf(op.getDpsInputs()[0]).isF32() &&
         elementOf(op.getDpsInits()[0]).isF32() &&
         (panel.isF32() || panel.isBF16() || panel.isSignlessInteger(8));
}

/// The register block's rows, columns and depth for an M x N x K step of
/// `kernel` (the kernel's, or fewer where they do not divide); false when N
/// has no multiple of the vector lanes (the contraction keeps its loops).
static bool chooseRegisterBlock(int64_t m, int64_t n, int64_t k,
                                const moe::CPUMicroKernel &kernel,
                                Blocking &b) {
  b.m0 = largestDivisor(m, {kernel.rows, 4, 2, 1}, kernel.rows);
  // Columns: the widest multiple of the vector lanes dividing N.
  int64_t lanes = kernel.lanes();
  b.n0 = 0;
  for (int64_t cols = kernel.cols; cols >= lanes && !b.n0; cols -= lanes)
    if (n % cols == 0)
      b.n0 = cols;
  b.k0 = largestDivisor(k, {kernel.depth, 2, 1}, kernel.depth);
  return b.n0 != 0;
}

/// The blocking of `matmul` (unpacked weights) for `kernel`, or nullopt
/// when its sizes do not tile into vector registers (it then keeps its
/// scalar loops).
static std::optional<Blocking> chooseBlocking(linalg::MatmulOp matmul,
                                              const moe::CPUMicroKernel &kernel,
                                              int64_t threads) {
  SmallVector<int64_t> ranges = matmul.getStaticLoopRanges();
  if (llvm::any_of(ranges, ShapedType::isDynamic) || !isF32Contraction(matmul))
    return std::nullopt;
  int64_t m = ranges[0], n = ranges[1], k = ranges[2];
  Blocking b;
  b.transposeLhs = true;
  if (!chooseRegisterBlock(m, n, k, kernel, b))
    return std::nullopt;
  b.kc = largestDivisor(k, kReductionBlocks,
                        m <= moe::kFewTileRows ? kFewRowsReductionBlock
                                               : kernel.reductionBlock);
  if (b.kc % b.k0 != 0)
    b.k0 = 1;
  // The columns are split across threads when they divide evenly.
  b.split = n;
  if (threads > 1 && n % (b.n0 * threads) == 0)
    b.split = n / threads;
  return b;
}

FailureOr<TilingInterface> moe::detail::tile(
    RewriterBase &rewriter, TilingInterface op, ArrayRef<int64_t> sizes,
    scf::SCFTilingOptions::LoopType loopType, ArrayRef<int64_t> interchange,
    SmallVectorImpl<LoopLikeOpInterface> *loops) {
  scf::SCFTilingOptions options;
  options.setTileSizes(getAsIndexOpFoldResult(rewriter.getContext(), sizes));
  options.setLoopType(loopType);
  if (!interchange.empty())
    options.setInterchange(interchange);
  rewriter.setInsertionPoint(op);
  FailureOr<scf::SCFTilingResult> tiled =
      scf::tileUsingSCF(rewriter, op, options);
  if (failed(tiled))
    return failure();
  rewriter.replaceOp(op, tiled->replacements);
  if (loops)
    loops->assign(tiled->loops.begin(), tiled->loops.end());
  return cast<TilingInterface>(tiled->tiledOps.front());
}

LogicalResult moe::detail::vectorizeMatmul(RewriterBase &rewriter,
                                           linalg::MatmulOp matmul,
                                           const Blocking &b) {
  Operation *op = matmul;
  if (b.transposeLhs) {
    rewriter.setInsertionPoint(matmul);
    FailureOr<Operation *> transposed =
        linalg::transposeMatmul(rewriter, matmul, /*transposeLHS=*/true);
    if (failed(transposed))
      return failure();
    op = *transposed;
  }
  using LoopType = scf::SCFTilingOptions::LoopType;
  auto tileable = cast<TilingInterface>(op);
  // (Read the sizes first: tiling replaces `op`.)
  SmallVector<int64_t> ranges =
      cast<linalg::LinalgOp>(op).getStaticLoopRanges();
  int64_t n = ranges[1], k = ranges[2];
  FailureOr<TilingInterface> tiled = tileable;
  if (b.split != n)
    tiled = tile(rewriter, tileable, {0, b.split}, LoopType::ForallOp);
  if (succeeded(tiled) && b.kc != k)
    tiled = tile(rewriter, *tiled, {0, 0, b.kc}, LoopType::ForOp);
  if (succeeded(tiled))
    tiled = tile(rewriter, *tiled, {b.m0, b.n0, b.k0}, LoopType::ForOp,
                 /*interchange=*/{1, 0, 2});
  if (failed(tiled))
    return failure();
  return vectorizeInPlace(rewriter, *tiled);
}

/// Tiles and vectorizes a contraction by a packed panel: a
/// linalg.batch_matmul over the left-hand side's row blocks ([M / M0, K,
/// M0] times a [K, P] panel into [M / M0, M0, P]; see kPackedPanelAttrName).
/// The reduction is blocked by KC outside the loop over row blocks, so that
/// the panel's KC x P block stays in L1 while every row block reads it and
/// each block's KC x M0 values are one contiguous run; each block's step is
/// then a 2-D matmul (transposed left-hand side) tiled to the register
/// block. Tiles of at most moe::kFewTileRows rows read the panel once, front to
/// back.
static LogicalResult vectorizePanelProduct(RewriterBase &rewriter,
                                           linalg::BatchMatmulOp product,
                                           const moe::CPUMicroKernel &kernel) {
  // (The number of row blocks may be dynamic: a tile's active blocks.)
  SmallVector<int64_t> ranges = product.getStaticLoopRanges();
  if (llvm::any_of(ArrayRef(ranges).drop_front(), ShapedType::isDynamic) ||
      !isPanelContraction(product))
    return success();
  int64_t blocks = ranges[0], m = ranges[1], n = ranges[2], k = ranges[3];
  bool fewRows =
      !ShapedType::isDynamic(blocks) && blocks * m <= moe::kFewTileRows;
  Blocking b;
  b.transposeLhs = false;
  b.split = n;
  b.kc =
      largestDivisor(k, kReductionBlocks, fewRows ? k : kernel.reductionBlock);
  if (!chooseRegisterBlock(m, n, b.kc, kernel, b))
    return success();
  using LoopType = scf::SCFTilingOptions::LoopType;
  Value panel = product.getDpsInputs()[1];
  FailureOr<TilingInterface> tiled = cast<TilingInterface>(*product);
  SmallVector<LoopLikeOpInterface> kcLoops;
  if (b.kc != k)
    tiled =
        tile(rewriter, *tiled, {0, 0, 0, b.kc}, LoopType::ForOp, {}, &kcLoops);
  SmallVector<LoopLikeOpInterface> blockLoops;
  if (succeeded(tiled) && blocks != 1)
    tiled =
        tile(rewriter, *tiled, {1, 0, 0, 0}, LoopType::ForOp, {}, &blockLoops);
  if (failed(tiled))
    return failure();
  // One row block: the same contraction on rank-reduced slices.
  auto block = cast<linalg::BatchMatmulOp>(tiled->getOperation());
  Location loc = block.getLoc();
  rewriter.setInsertionPoint(block);
  Type f32 = rewriter.getF32Type();
  Value lhs = tensor::createCanonicalRankReducingExtractSliceOp(
      rewriter, loc, block.getDpsInputs()[0],
      RankedTensorType::get({b.kc, m}, f32));
  Value acc = block.getDpsInits()[0];
  Value out = tensor::createCanonicalRankReducingExtractSliceOp(
      rewriter, loc, acc, RankedTensorType::get({m, n}, f32));
  auto matmul = linalg::MatmulOp::create(
      rewriter, loc, TypeRange{out.getType()},
      ValueRange{lhs, block.getDpsInputs()[1]}, ValueRange{out});
  MLIRContext *context = rewriter.getContext();
  AffineExpr mi, ni, ki;
  bindDims(context, mi, ni, ki);
  matmul.setIndexingMapsAttr(rewriter.getAffineMapArrayAttr(
      {AffineMap::get(3, 0, {ki, mi}, context),
       AffineMap::get(3, 0, {ki, ni}, context),
       AffineMap::get(3, 0, {mi, ni}, context)}));
  Value result = tensor::createCanonicalRankReducingInsertSliceOp(
      rewriter, loc, matmul.getResult(0), acc);
  rewriter.replaceOp(block, result);
  if (failed(vectorizeMatmul(rewriter, matmul, b)))
    return failure();
  // (A panel wider than the register block, packed for another target,
  // would be prefetched once per column strip: it is not.)
  if (kcLoops.size() == 1 && kernel.prefetchBlocks > 0 && b.n0 == n)
    if (auto kcLoop = dyn_cast<scf::ForOp>(*kcLoops.front()))
      (void)prefetchNextReductionBlock(
          rewriter, kcLoop,
          blockLoops.empty() ? scf::ForOp()
                             : dyn_cast<scf::ForOp>(*blockLoops.front()),
          panel, kernel.prefetchBlocks);
  return success();
}

void moe::detail::addCanonicalizations(RewritePatternSet &patterns) {
  MLIRContext *context = patterns.getContext();
  for (Dialect *dialect : context->getLoadedDialects())
    dialect->getCanonicalizationPatterns(patterns);
  for (RegisteredOperationName op : context->getRegisteredOperations())
    op.getCanonicalizationPatterns(patterns, context);
}

static LogicalResult applyPatterns(Operation *root,
                                   function_ref<void(RewritePatternSet &)> add,
                                   bool canonicalize = true) {
  RewritePatternSet patterns(root->getContext());
  add(patterns);
  if (canonicalize)
    addCanonicalizations(patterns);
  if (succeeded(applyPatternsGreedily(root, std::move(patterns))))
    return success();
  // (A rewrite that never converges is a bug of ours: say so.)
  return root->emitError("moe-cpu-codegen: internal error: the vector "
                         "rewrites did not converge; please report this "
                         "input");
}

namespace {

struct CPUCodegenPass : moe::impl::CPUCodegenBase<CPUCodegenPass> {
  using Base::Base;

  void runOnOperation() override {
    if (threads < 1 || threads > 1024) {
      getOperation()->emitError("moe-cpu-codegen: threads must be in "
                                "[1, 1024], got ")
          << static_cast<int64_t>(threads);
      return signalPassFailure();
    }
    std::string error;
    const moe::CPUMicroKernel *kernel =
        moe::getCPUMicroKernel(targetCpu, error);
    if (!kernel) {
      getOperation()->emitError("moe-cpu-codegen: ") << error;
      return signalPassFailure();
    }
    if (stage == moe::CPUCodegenStage::Vectorize)
      runVectorize(*kernel);
    else
      runLower();
  }

  void runVectorize(const moe::CPUMicroKernel &kernel) {
    SmallVector<std::pair<linalg::MatmulOp, Blocking>> work;
    SmallVector<linalg::BatchMatmulOp> panels;
    // Matmuls outside the expert tiles: the router's logits.
    SmallVector<linalg::MatmulOp> others;
    SmallVector<linalg::GenericOp> elementwise;
    getOperation()->walk([&](linalg::LinalgOp op) {
      if (op->removeAttr(moe::kPanelElementwiseAttrName))
        if (auto generic = dyn_cast<linalg::GenericOp>(*op))
          elementwise.push_back(generic);
      if (!op->hasAttr(moe::kExpertTileAttrName)) {
        if (auto matmul = dyn_cast<linalg::MatmulOp>(*op))
          others.push_back(matmul);
        return;
      }
      op->removeAttr(moe::kExpertTileAttrName);
      auto product = dyn_cast<linalg::BatchMatmulOp>(*op);
      if (product && op->hasAttr(moe::kPackedPanelAttrName))
        panels.push_back(product);
      auto matmul = dyn_cast<linalg::MatmulOp>(*op);
      if (!matmul || matmul.hasUserDefinedMaps())
        return;
      if (std::optional<Blocking> b = chooseBlocking(matmul, kernel, threads))
        work.push_back({matmul, *b});
    });
    IRRewriter rewriter(&getContext());
    auto fail = [&](Operation *op) {
      op->emitError("moe-cpu-codegen: cannot tile and vectorize this "
                    "contraction");
      signalPassFailure();
    };
    for (auto [matmul, blocking] : work)
      if (failed(vectorizeMatmul(rewriter, matmul, blocking)))
        return fail(matmul);
    for (linalg::BatchMatmulOp product : panels)
      if (failed(vectorizePanelProduct(rewriter, product, kernel)))
        return fail(product);
    for (linalg::MatmulOp matmul : others)
      if (failed(vectorizeRowMatmul(rewriter, matmul, kernel)))
        return fail(matmul);
    // (One that cannot be vectorized keeps its loops.)
    for (linalg::GenericOp op : elementwise)
      (void)vectorizePanelElementwise(rewriter, op);
    if (failed(applyPatterns(getOperation(), [](RewritePatternSet &p) {
          vector::populateVectorReductionToContractPatterns(p);
          vector::populateVectorTransferPermutationMapLoweringPatterns(p);
          // A bf16 or i8 panel's conversion moves above the broadcast and
          // transpose of its values, so that each value is converted once
          // and the contraction folds the rest as for f32.
          vector::populateSinkVectorOpsPatterns(p);
        })))
      signalPassFailure();
  }

  void runLower() {
    ModuleOp module = getOperation();
    MLIRContext *context = &getContext();
    IRRewriter rewriter(context);
    lowerNibbleDots(rewriter, module, moe::getCPUIntegerDot(targetCpu));
    // Hoisting skips transfers on views (and tiling on tensors made the
    // accumulator's subview inside the reduction loop): fold the subviews
    // into the transfers' indices, so that the accumulator stays in
    // registers across the reduction rather than being stored and reloaded
    // at every step. The folded read and write compute equal indices
    // separately; CSE makes them the same values so that they match.
    module.walk([&](func::FuncOp func) {
      DominanceInfo dominance(func);
      eliminateCommonSubExpressions(rewriter, dominance, func);
    });
    if (failed(applyPatterns(module, [](RewritePatternSet &p) {
          memref::populateFoldMemRefAliasOpPatterns(p);
        })))
      return signalPassFailure();
    module.walk([&](func::FuncOp func) {
      DominanceInfo dominance(func);
      eliminateCommonSubExpressions(rewriter, dominance, func);
    });
    module.walk([](scf::ForOp loop) { moveLoopInvariantCode(loop); });
    module.walk(
        [](func::FuncOp func) { linalg::hoistRedundantVectorTransfers(func); });
    if (failed(applyPatterns(module, [](RewritePatternSet &p) {
          vector::populateVectorContractLoweringPatterns(
              p, vector::VectorContractLowering::OuterProduct);
          vector::populateVectorOuterProductLoweringPatterns(p);
        })))
      return signalPassFailure();
    // The outer products take the left-hand elements one by one: read each
    // with a scalar load (a broadcast from memory) rather than loading the
    // block's row as a vector and extracting from it, which needs shuffles
    // and registers.
    if (failed(applyPatterns(
            module,
            [](RewritePatternSet &p) {
              vector::populateScalarVectorTransferLoweringPatterns(
                  p, /*benefit=*/1, /*allowMultipleUses=*/true);
            },
            /*canonicalize=*/false)))
      return signalPassFailure();
    // f32 exp (the body's activations: silu, sigmoid) as upstream's
    // polynomial, i.e. arithmetic that LLVM vectorizes with the elementwise
    // loop around it, instead of a call to libm's expf per element.
    if (failed(applyPatterns(
            module,
            [](RewritePatternSet &p) {
              populateMathPolynomialApproximationPatterns(
                  p, [](StringRef name) {
                    return name == math::ExpOp::getOperationName();
                  });
            },
            /*canonicalize=*/false)))
      return signalPassFailure();
    // What is left of the vector ops: 1-D loads, stores and FMAs.
    if (failed(applyPatterns(
            module,
            [](RewritePatternSet &p) {
              vector::populateVectorTransferPermutationMapLoweringPatterns(p);
              vector::populateVectorTransferLoweringPatterns(
                  p,
                  /*maxTransferRank=*/1);
              vector::populateVectorTransposeLoweringPatterns(
                  p, vector::VectorTransposeLowering::EltWise);
              vector::populateVectorShapeCastLoweringPatterns(p);
              vector::populateVectorBroadcastLoweringPatterns(p);
              // (The generic integer dot product's sums of four.)
              vector::populateVectorMultiReductionLoweringPatterns(
                  p, vector::VectorMultiReductionLowering::InnerReduction);
            },
            // (With the canonicalizations, broadcast lowering and folding
            // rewrite each other's results forever; the pipeline canonicalizes
            // after this pass.)
            /*canonicalize=*/false)))
      signalPassFailure();
  }
};

} // namespace

std::unique_ptr<Pass> mlir::moe::createCPUCodegenPass(CPUCodegenStage stage,
                                                      int64_t threads,
                                                      StringRef targetCpu) {
  CPUCodegenOptions options;
  options.stage = stage;
  options.threads = threads;
  options.targetCpu = targetCpu.str();
  return createCPUCodegen(options);
}
