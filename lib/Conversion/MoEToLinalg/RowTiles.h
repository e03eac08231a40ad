//===- RowTiles.h - Cutting an expert's rows into tiles ---------*- C++ -*-===//
//
// This file declares how the fused lowering cuts the rows of one expert
// into tiles of static sizes.
//
//===----------------------------------------------------------------------===//

#ifndef LIB_CONVERSION_MOETOLINALG_ROWTILES_H
#define LIB_CONVERSION_MOETOLINALG_ROWTILES_H

#include "mlir/IR/Builders.h"

namespace mlir::moe::detail {

/// Emits one tile of `rows` rows from slot `r0` on, adding into `acc`;
/// returns the sum.
using EmitTileFn = function_ref<Value(OpBuilder &, Location, Value r0,
                                      int64_t rows, Value acc)>;

/// Emits the tiles of an expert's `count` rows into `acc`: tiles of `tile`
/// rows (one tile when `staticRows`, the body's static count), then the
/// rest in padded tiles of smaller static sizes. The loops over the tiles
/// are marked with kIndependentTilesAttrName (the tiles of one expert hold
/// distinct tokens). With `fullTileRest`, a rest of more than 8 rows takes
/// one more full-size tile (whose contractions compute only the rows it
/// holds); else it takes 8-row tiles.
Value emitRowTiles(OpBuilder &b, Location loc, Value count, int64_t tile,
                   bool staticRows, bool fullTileRest, Value acc,
                   EmitTileFn emitTile);

} // namespace mlir::moe::detail

#endif // LIB_CONVERSION_MOETOLINALG_ROWTILES_H
