// RUN: moe-opt %s -split-input-file -convert-moe-to-fused-linalg=tile-rows=16 | FileCheck %s
// RUN: not moe-opt %s -split-input-file -convert-moe-to-fused-linalg=tile-rows=9223372036854775807 2>&1 | FileCheck %s --check-prefix=TILEROWS
// RUN: not moe-opt %s -split-input-file -convert-moe-to-fused-linalg=tile-rows=0 2>&1 | FileCheck %s --check-prefix=TILEROWS0
// RUN: not moe-opt %s -split-input-file -convert-moe-to-fused-linalg=row-block=65 2>&1 | FileCheck %s --check-prefix=ROWBLOCK

// TILEROWS: error: convert-moe-to-fused-linalg: tile-rows must be in [1, 4096], got 9223372036854775807
// TILEROWS0: error: convert-moe-to-fused-linalg: tile-rows must be in [1, 4096], got 0
// ROWBLOCK: error: convert-moe-to-fused-linalg: row-block must be in [1, 64], got 65

// Capacity layout, body for a dynamic row count: experts outer; full
// tiles of 16 rows, then tiles of 8, then the last 1..7 rows in one padded
// tile of 8 (5..7 rows) or of 4 (1..4 rows), every tile of a static shape. Each tile reads its slots (past the end: id -1, gate 0),
// gathers its token rows straight into the body, and adds the gated rows
// into an f32 accumulator. No [E, C, D] buffer is built.
// CHECK-LABEL: func.func @capacity
// CHECK-SAME:    (%[[X:.+]]: tensor<?x16xf32>, %[[IDS:.+]]: tensor<4x?xi32>, %[[G:.+]]: tensor<4x?xf32>, %[[W:.+]]: tensor<4x16x16xf32>, %[[ACC:.+]]: tensor<?x16xf32>)
// CHECK-NOT:     tensor<4x?x16xf32>
// With T = 0 no expert runs (there is no row to gather, whatever the ids).
// CHECK:         %[[ANY:.+]] = arith.cmpi ne, %{{.+}}, %c0
// CHECK:         %[[NE:.+]] = arith.select %[[ANY]], %c4, %c0
// CHECK:         %[[Y:.+]] = scf.for %[[E:.+]] = %{{.+}} to %[[NE]] step %{{.+}} iter_args(%[[A:.+]] = %[[ACC]]) -> (tensor<?x16xf32>) {
// CHECK:           %[[IDSE:.+]] = tensor.extract_slice %[[IDS]][%[[E]], 0] [1, %{{.+}}] [1, 1] : tensor<4x?xi32> to tensor<?xi32>
// CHECK:           %[[GE:.+]] = tensor.extract_slice %[[G]][%[[E]], 0] [1, %{{.+}}] [1, 1] : tensor<4x?xf32> to tensor<?xf32>
// CHECK:           %[[WE:.+]] = tensor.extract_slice %[[W]][%[[E]], 0, 0] [1, 16, 16] [1, 1, 1] : tensor<4x16x16xf32> to tensor<16x16xf32>
// CHECK:           %[[FULL:.+]] = arith.muli %{{.+}}, %c16{{.*}} : index
// CHECK:           %[[TILED:.+]] = scf.for %[[R0:.+]] = %{{.+}} to %[[FULL]] step %c16{{.*}} iter_args(%[[TA:.+]] = %[[A]]) -> (tensor<?x16xf32>) {
// CHECK:             %[[SLOTS:.+]]:2 = linalg.generic {{.*}} outs(%{{.+}}, %{{.+}} : tensor<16xi32>, tensor<16xf32>)
// CHECK:               tensor.extract %[[IDSE]]
// CHECK:               tensor.extract %[[GE]]
// CHECK:             %[[ROWS:.+]] = linalg.generic {{.*}} ins(%[[SLOTS]]#0 : tensor<16xi32>) outs(%{{.+}} : tensor<16x16xf32>)
// CHECK:               tensor.extract %[[X]]
// CHECK:             %[[CAST:.+]] = tensor.cast %[[ROWS]] : tensor<16x16xf32> to tensor<?x16xf32>
// CHECK:             %[[OUT:.+]] = linalg.matmul {moe.expert_tile} ins(%[[CAST]], %[[WE]] : tensor<?x16xf32>, tensor<16x16xf32>)
// CHECK:             scf.for %{{.+}} = %{{.+}} to %c16{{.*}} step %{{.+}} iter_args(%{{.+}} = %[[TA]]) -> (tensor<?x16xf32>) {
// CHECK:               tensor.extract %[[SLOTS]]#0
// CHECK:               tensor.extract %[[SLOTS]]#1
// CHECK:               tensor.extract %[[OUT]]
// CHECK:           } {moe.independent_tiles}
// CHECK:           %[[REST:.+]] = arith.subi %{{.+}}, %[[FULL]]
// CHECK:           arith.divui %[[REST]], %c8
// CHECK:           %[[END8:.+]] = arith.addi %[[FULL]], %{{.+}}
// CHECK:           %[[TAIL:.+]] = arith.subi %{{.+}}, %[[END8]]
// CHECK:           %[[LARGE:.+]] = arith.cmpi ugt, %[[TAIL]], %c4{{.*}}
// CHECK:           %[[T8:.+]] = scf.for %{{.+}} = %[[FULL]] to %[[END8]] step %c8{{.*}} iter_args(%{{.+}} = %[[TILED]]) -> (tensor<?x16xf32>) {
// CHECK:             linalg.generic {{.*}} outs(%{{.+}}, %{{.+}} : tensor<8xi32>, tensor<8xf32>)
// CHECK:             linalg.generic {{.*}} outs(%{{.+}} : tensor<8x16xf32>)
// CHECK:           %[[LAST8:.+]] = arith.select %[[LARGE]], %{{.+}}, %[[END8]]
// CHECK:           %[[T8B:.+]] = scf.for %{{.+}} = %[[END8]] to %[[LAST8]] step %c8{{.*}} iter_args(%{{.+}} = %[[T8]])
// CHECK:             linalg.generic {{.*}} outs(%{{.+}} : tensor<8x16xf32>)
// CHECK:           %[[LAST4:.+]] = arith.select %[[LARGE]], %[[END8]], %{{.+}}
// CHECK:           scf.for %{{.+}} = %[[END8]] to %[[LAST4]] step %c4{{.*}} iter_args(%{{.+}} = %[[T8B]])
// CHECK:             linalg.generic {{.*}} outs(%{{.+}}, %{{.+}} : tensor<4xi32>, tensor<4xf32>)
// CHECK:             linalg.generic {{.*}} outs(%{{.+}} : tensor<4x16xf32>)
// CHECK:         return %[[Y]]
// CHECK-NOT:     moe.
func.func @capacity(%x: tensor<?x16xf32>, %ids: tensor<4x?xi32>, %g: tensor<4x?xf32>, %w: tensor<4x16x16xf32>,
                    %acc: tensor<?x16xf32>) -> tensor<?x16xf32> {
  %xe = moe.dispatch %x indices(%ids : tensor<4x?xi32>) : tensor<?x16xf32> -> tensor<4x?x16xf32>
  %ye = moe.expert %xe weights(%w : tensor<4x16x16xf32>) : tensor<4x?x16xf32> -> tensor<4x?x16xf32> {
  ^bb0(%r: tensor<?x16xf32>, %a: tensor<16x16xf32>):
    %c0 = arith.constant 0 : index
    %z = arith.constant 0.0 : f32
    %n = tensor.dim %r, %c0 : tensor<?x16xf32>
    %e = tensor.empty(%n) : tensor<?x16xf32>
    %f = linalg.fill ins(%z : f32) outs(%e : tensor<?x16xf32>) -> tensor<?x16xf32>
    %m = linalg.matmul ins(%r, %a : tensor<?x16xf32>, tensor<16x16xf32>) outs(%f : tensor<?x16xf32>) -> tensor<?x16xf32>
    moe.yield %m : tensor<?x16xf32>
  }
  %y = moe.combine %ye indices(%ids : tensor<4x?xi32>) weights(%g : tensor<4x?xf32>) into %acc
      : tensor<4x?x16xf32> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

// A body written for exactly C = 5 rows gets one tile of 5 rows per expert.
// CHECK-LABEL: func.func @static_rows
// CHECK-NOT:     tensor<2x5x4xf32>
// CHECK:         scf.for {{.*}} to %c2 step
// CHECK:           scf.for {{.*}} step %c5
// CHECK:             %[[SLOTS:.+]]:2 = linalg.generic {{.*}} outs(%{{.+}}, %{{.+}} : tensor<5xi32>, tensor<5xf32>)
// CHECK:             linalg.generic {{.*}} ins(%[[SLOTS]]#0 : tensor<5xi32>) outs(%{{.+}} : tensor<5x4xf32>)
// CHECK:             arith.constant dense<1.000000e+00> : tensor<5x4xf32>
func.func @static_rows(%x: tensor<8x4xf32>, %ids: tensor<2x5xi32>, %g: tensor<2x5xf32>, %acc: tensor<8x4xf32>) -> tensor<8x4xf32> {
  %xe = moe.dispatch %x indices(%ids : tensor<2x5xi32>) : tensor<8x4xf32> -> tensor<2x5x4xf32>
  %ye = moe.expert %xe : tensor<2x5x4xf32> -> tensor<2x5x4xf32> {
  ^bb0(%r: tensor<5x4xf32>):
    %c = arith.constant dense<1.0> : tensor<5x4xf32>
    moe.yield %c : tensor<5x4xf32>
  }
  %y = moe.combine %ye indices(%ids : tensor<2x5xi32>) weights(%g : tensor<2x5xf32>) into %acc
      : tensor<2x5x4xf32> -> tensor<8x4xf32>
  return %y : tensor<8x4xf32>
}

// -----

// Grouped layout: expert e's rows are offsets[e]..offsets[e+1] of the CSR ids.
// CHECK-LABEL: func.func @grouped
// CHECK-SAME:    (%[[X:.+]]: tensor<?x4xbf16>, %[[IDS:.+]]: tensor<?xi32>, %[[G:.+]]: tensor<?xf32>, %[[OFF:.+]]: tensor<3xi32>, %[[ACC:.+]]: tensor<?x4xbf16>)
// The experts' row ranges, once (clamped: see expert.mlir).
// CHECK:         %[[B:.+]]:2 = linalg.generic {{.*}} outs(%{{.+}}, %{{.+}} : tensor<2xi32>, tensor<2xi32>)
// CHECK:           tensor.extract %[[OFF]]
// CHECK:         %[[WIDE:.+]] = linalg.generic {{.*}} ins(%[[ACC]] : tensor<?x4xbf16>) outs(%{{.+}} : tensor<?x4xf32>)
// CHECK:         %[[NE:.+]] = arith.select %{{.+}}, %c2, %c0
// CHECK:         %[[Y:.+]] = scf.for %[[E:.+]] = %{{.+}} to %[[NE]] step %{{.+}} iter_args(%{{.+}} = %[[WIDE]])
// CHECK:           %[[S:.+]] = tensor.extract %[[B]]#0[%[[E]]] : tensor<2xi32>
// CHECK:           %[[START:.+]] = arith.index_cast %[[S]]
// CHECK:           %[[C:.+]] = tensor.extract %[[B]]#1[%[[E]]] : tensor<2xi32>
// CHECK:           %[[COUNT:.+]] = arith.index_cast %[[C]]
// CHECK:           tensor.extract_slice %[[IDS]][%[[START]]] [%[[COUNT]]] [1] : tensor<?xi32> to tensor<?xi32>
// CHECK:           scf.for
// CHECK:           scf.for
// CHECK:         linalg.generic {{.*}} ins(%[[Y]] : tensor<?x4xf32>) outs(%{{.+}} : tensor<?x4xbf16>)
func.func @grouped(%x: tensor<?x4xbf16>, %ids: tensor<?xi32>, %g: tensor<?xf32>, %off: tensor<3xi32>,
                   %acc: tensor<?x4xbf16>) -> tensor<?x4xbf16> {
  %xg = moe.dispatch %x indices(%ids : tensor<?xi32>) : tensor<?x4xbf16> -> tensor<?x4xbf16>
  %yg = moe.expert %xg offsets(%off : tensor<3xi32>) : tensor<?x4xbf16> -> tensor<?x4xbf16> {
  ^bb0(%r: tensor<?x4xbf16>):
    moe.yield %r : tensor<?x4xbf16>
  }
  %y = moe.combine %yg indices(%ids : tensor<?xi32>) weights(%g : tensor<?xf32>) into %acc
      : tensor<?x4xbf16> -> tensor<?x4xbf16>
  return %y : tensor<?x4xbf16>
}

// -----

// A chain whose dispatched tokens are also returned is not fused: it goes
// the reference way, op by op.
// CHECK-LABEL: func.func @not_fused
// CHECK:         scf.forall
func.func @not_fused(%x: tensor<8x4xf32>, %ids: tensor<2x5xi32>, %g: tensor<2x5xf32>, %acc: tensor<8x4xf32>)
    -> (tensor<8x4xf32>, tensor<2x5x4xf32>) {
  %xe = moe.dispatch %x indices(%ids : tensor<2x5xi32>) : tensor<8x4xf32> -> tensor<2x5x4xf32>
  %ye = moe.expert %xe : tensor<2x5x4xf32> -> tensor<2x5x4xf32> {
  ^bb0(%r: tensor<5x4xf32>):
    moe.yield %r : tensor<5x4xf32>
  }
  %y = moe.combine %ye indices(%ids : tensor<2x5xi32>) weights(%g : tensor<2x5xf32>) into %acc
      : tensor<2x5x4xf32> -> tensor<8x4xf32>
  return %y, %xe : tensor<8x4xf32>, tensor<2x5x4xf32>
}

// -----

// Weight rows 4 KiB apart (1024 f32) share cache sets: when an expert has at
// least 16 rows (two tiles or more), its tiles read a copy with 64-byte
// longer rows. The padded buffer is made once and carried by the expert
// loop (one allocation per call, not one per expert; alloc_tensor, as CSE
// would merge equal tensor.empty ops and so the buffers of two weights); it
// has no rows when no expert has 16.
// CHECK-LABEL: func.func @aliased_rows
// CHECK:         %[[MOST:.+]] = tensor.dim %{{.+}}, %c1 : tensor<2x?xi32>
// CHECK:         %[[NEEDED:.+]] = arith.cmpi uge, %[[MOST]], %c16
// CHECK:         %[[ROWS:.+]] = arith.select %[[NEEDED]], %c16{{.*}}, %c0
// CHECK:         %[[BUF0:.+]] = bufferization.alloc_tensor(%[[ROWS]]) : tensor<?x1040xf32>
// CHECK:         scf.for %[[E:[a-z0-9_]+]] = {{.+}} iter_args(%[[ACC:.+]] = %{{.+}}, %[[BUF:.+]] = %[[BUF0]]) -> (tensor<?x1024xf32>, tensor<?x1040xf32>)
// CHECK:           %[[WE:.+]] = tensor.extract_slice %{{.+}}[%[[E]], 0, 0] [1, 16, 1024] [1, 1, 1] : tensor<2x16x1024xf32> to tensor<16x1024xf32>
// CHECK:           %[[WORTH:.+]] = arith.cmpi uge, %{{.+}}, %c16
// CHECK:           scf.if %[[WORTH]]
// CHECK:             %[[VIEW:.+]] = tensor.extract_slice %[[BUF]][0, 0] [16, 1024] [1, 1] : tensor<?x1040xf32> to tensor<16x1024xf32>
// CHECK:             %[[PADDED:.+]] = linalg.copy ins(%[[WE]] : tensor<16x1024xf32>) outs(%[[VIEW]] : tensor<16x1024xf32>)
// CHECK:             scf.for
// CHECK:               linalg.matmul {moe.expert_tile} ins(%{{.+}}, %[[PADDED]] :
// CHECK:             scf.for
// CHECK:               linalg.matmul {moe.expert_tile} ins(%{{.+}}, %[[PADDED]] :
// CHECK:             %[[BACK:.+]] = tensor.insert_slice %[[PADDED]] into %[[BUF]][0, 0] [16, 1024] [1, 1]
// CHECK:             scf.yield %{{.+}}, %[[BACK]] :
// CHECK:           } else {
// CHECK:             scf.for
// CHECK:               linalg.matmul {moe.expert_tile} ins(%{{.+}}, %[[WE]] :
// CHECK:             scf.for
// CHECK:               linalg.matmul {moe.expert_tile} ins(%{{.+}}, %[[WE]] :
// CHECK:             scf.yield %{{.+}}, %[[BUF]] :
func.func @aliased_rows(%x: tensor<?x16xf32>, %ids: tensor<2x?xi32>, %g: tensor<2x?xf32>, %w: tensor<2x16x1024xf32>,
                        %acc: tensor<?x1024xf32>) -> tensor<?x1024xf32> {
  %xe = moe.dispatch %x indices(%ids : tensor<2x?xi32>) : tensor<?x16xf32> -> tensor<2x?x16xf32>
  %ye = moe.expert %xe weights(%w : tensor<2x16x1024xf32>) : tensor<2x?x16xf32> -> tensor<2x?x1024xf32> {
  ^bb0(%r: tensor<?x16xf32>, %a: tensor<16x1024xf32>):
    %c0 = arith.constant 0 : index
    %z = arith.constant 0.0 : f32
    %n = tensor.dim %r, %c0 : tensor<?x16xf32>
    %e = tensor.empty(%n) : tensor<?x1024xf32>
    %f = linalg.fill ins(%z : f32) outs(%e : tensor<?x1024xf32>) -> tensor<?x1024xf32>
    %o = linalg.matmul ins(%r, %a : tensor<?x16xf32>, tensor<16x1024xf32>) outs(%f : tensor<?x1024xf32>) -> tensor<?x1024xf32>
    moe.yield %o : tensor<?x1024xf32>
  }
  %y = moe.combine %ye indices(%ids : tensor<2x?xi32>) weights(%g : tensor<2x?xf32>) into %acc
      : tensor<2x?x1024xf32> -> tensor<?x1024xf32>
  return %y : tensor<?x1024xf32>
}
