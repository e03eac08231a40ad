// RUN: moe-opt %s -split-input-file -moe-checked-entry-points | FileCheck %s

// Out-parameters: the twin returns only the status. Every check of each
// argument, in the order they are reported (the first failure wins).

// CHECK-LABEL: func.func @out_params(
// CHECK-LABEL: func.func @out_params_checked(
// CHECK-SAME:      %[[X:.+]]: memref<?x?xf32, strided<[?, ?], offset: ?>>,
// CHECK-SAME:      %[[Y:.+]]: memref<?x?xf32, strided<[?, ?], offset: ?>>) -> i32
// CHECK-SAME:      attributes {llvm.emit_c_interface, moe.checked_entry_of = @out_params}
// CHECK:         %{{[^ ,]+}}, %[[XOFF:[^ ,]+]], %[[XS:[^ ,:]+]]:2, %[[XST:[^ ,:]+]]:2 = memref.extract_strided_metadata %[[X]]
// CHECK:         %[[XP:.+]] = memref.extract_aligned_pointer_as_index %[[X]]
// CHECK:         %{{[^ ,]+}}, %[[YOFF:[^ ,]+]], %[[YS:[^ ,:]+]]:2, %[[YST:[^ ,:]+]]:2 = memref.extract_strided_metadata %[[Y]]
// CHECK:         %[[YP:.+]] = memref.extract_aligned_pointer_as_index %[[Y]]
// CHECK:         %[[C0:.+]] = arith.constant 0 : index
// CHECK:         %[[C1:.+]] = arith.constant 1 : index
// x: T (dynamic) >= 0, D = 8.
// CHECK:         %[[NEG:.+]] = arith.cmpi slt, %[[XS]]#0, %[[C0]]
// CHECK:         %[[C8:.+]] = arith.constant 8 : index
// CHECK:         arith.cmpi ne, %[[XS]]#1, %[[C8]]
// CHECK:         arith.cmpi eq, %[[XP]], %[[C0]]
// f32: aligned to 4 bytes.
// CHECK:         %[[C3:.+]] = arith.constant 3 : index
// CHECK:         %[[LOW:.+]] = arith.andi %[[XP]], %[[C3]]
// CHECK:         arith.cmpi ne, %[[LOW]], %[[C0]]
// CHECK:         arith.cmpi ne, %[[XOFF]], %[[C0]]
// Strides [8, 1]; dim 0 is dynamic, so a size of 1 lets any stride pass.
// CHECK:         arith.cmpi ne, %[[XST]]#1, %[[C1]]
// CHECK:         arith.cmpi ne, %[[XST]]#0, %[[C8]]
// CHECK:         arith.cmpi ne, %[[XS]]#0, %[[C1]]
// y: 4 x 8, no dynamic size.
// CHECK:         arith.cmpi ne, %[[YS]]#0, %{{.+}}
// CHECK:         arith.cmpi ne, %[[YS]]#1, %[[C8]]
// Status codes: kind | argument << 8, first failure wins.
// CHECK-DAG:     arith.constant 1 : i32
// CHECK-DAG:     arith.constant 2 : i32
// CHECK-DAG:     arith.constant 258 : i32
// CHECK-DAG:     arith.constant 262 : i32
// CHECK:         %[[STATUS:.+]] = arith.select %[[NEG]], %{{.+}}, %{{.+}} : i32
// CHECK:         %[[OK:.+]] = arith.cmpi eq, %[[STATUS]], %{{.+}} : i32
// CHECK:         scf.if %[[OK]] {
// CHECK:           %[[X2:.+]] = memref.reinterpret_cast %[[X]] to offset: [0], sizes: [%[[XS]]#0, 8], strides: [8, 1]
// CHECK-SAME:          to memref<?x8xf32>
// CHECK:           %[[Y2:.+]] = memref.reinterpret_cast %[[Y]] to offset: [0], sizes: [4, 8], strides: [8, 1]
// CHECK-SAME:          to memref<4x8xf32>
// CHECK:           func.call @out_params(%[[X2]], %[[Y2]])
// CHECK:         }
// CHECK:         return %[[STATUS]] : i32
func.func @out_params(%x: memref<?x8xf32>, %y: memref<4x8xf32>)
    attributes {llvm.emit_c_interface} {
  return
}

// -----

// Results: the status comes first; on error a zero-filled buffer of the
// static sizes, 0 for the dynamic ones. i16 wants 2-byte alignment.

// CHECK-LABEL: func.func @results_checked(
// CHECK-SAME:      %[[X:.+]]: memref<?x?xi16, strided<[?, ?], offset: ?>>) -> (i32, memref<?x4xi16>, index)
// CHECK:         arith.constant 1 : index
// CHECK:         arith.andi %{{.+}}, %c1
// CHECK:         %[[R:.+]]:2 = scf.if %{{.+}} -> (memref<?x4xi16>, index) {
// CHECK:           %[[CALL:.+]]:2 = func.call @results(
// CHECK:           scf.yield %[[CALL]]#0, %[[CALL]]#1
// CHECK:         } else {
// CHECK:           %[[Z:.+]] = memref.alloc(%{{.+}}) : memref<?x4xi16>
// CHECK:           linalg.fill ins(%{{.+}} : i16) outs(%[[Z]] : memref<?x4xi16>)
// CHECK:           scf.yield %[[Z]], %{{.+}} : memref<?x4xi16>, index
// CHECK:         }
// CHECK:         return %{{.+}}, %[[R]]#0, %[[R]]#1 : i32, memref<?x4xi16>, index
func.func @results(%x: memref<?x4xi16>) -> (memref<?x4xi16>, index)
    attributes {llvm.emit_c_interface} {
  %c0 = arith.constant 0 : index
  %n = memref.dim %x, %c0 : memref<?x4xi16>
  %r = memref.alloc(%n) : memref<?x4xi16>
  return %r, %n : memref<?x4xi16>, index
}

// -----

// Ties: a linalg op in the entry block iterates dim 0 of %a and %b (and of
// %out, static) together, and a copy ties every dim of %c and %d; the
// generic inside the scf.if may not run and ties nothing.

// CHECK-LABEL: func.func @ties_checked(
// CHECK-SAME:      %[[A:[^:]+]]: memref<?x?xf32, strided<[?, ?], offset: ?>>,
// CHECK-SAME:      %[[B:[^:]+]]: memref<?xf32, strided<[?], offset: ?>>,
// CHECK-SAME:      %[[OUT:[^:]+]]: memref<?x?xf32, strided<[?, ?], offset: ?>>,
// CHECK-SAME:      %[[C:[^:]+]]: memref<?xf32, strided<[?], offset: ?>>,
// CHECK-SAME:      %[[D:[^:]+]]: memref<?xf32, strided<[?], offset: ?>>,
// CHECK-SAME:      %[[E:[^:]+]]: memref<?xf32, strided<[?], offset: ?>>,
// CHECK-SAME:      %[[COND:[^:]+]]: i1) -> i32
// CHECK:         %{{[^ ,]+}}, %{{[^ ,]+}}, %[[AS:[^ ,:]+]]:2, %{{[^ ,]+}} = memref.extract_strided_metadata %[[A]]
// CHECK:         %{{[^ ,]+}}, %{{[^ ,]+}}, %[[BS:[^ ,]+]], %{{[^ ,]+}} = memref.extract_strided_metadata %[[B]]
// CHECK:         %{{[^ ,]+}}, %{{[^ ,]+}}, %[[OS:[^ ,:]+]]:2, %{{[^ ,]+}} = memref.extract_strided_metadata %[[OUT]]
// CHECK:         %{{[^ ,]+}}, %{{[^ ,]+}}, %[[CS:[^ ,]+]], %{{[^ ,]+}} = memref.extract_strided_metadata %[[C]]
// CHECK:         %{{[^ ,]+}}, %{{[^ ,]+}}, %[[DS:[^ ,]+]], %{{[^ ,]+}} = memref.extract_strided_metadata %[[D]]
// CHECK:         %[[T1:.+]] = arith.cmpi ne, %[[AS]]#0, %[[BS]] : index
// CHECK:         %[[T2:.+]] = arith.cmpi ne, %[[AS]]#0, %[[OS]]#0 : index
// CHECK:         %[[T3:.+]] = arith.cmpi ne, %[[CS]], %[[DS]] : index
// CHECK-NOT:     arith.constant 1287 : i32
// Inconsistent sizes: kind 7, argument 1, 2 and 4.
// CHECK:         arith.constant 1031 : i32
// CHECK:         arith.select %[[T3]]
// CHECK:         arith.constant 519 : i32
// CHECK:         arith.select %[[T2]]
// CHECK:         arith.constant 263 : i32
// CHECK:         arith.select %[[T1]]
// CHECK:         func.call @ties({{.*}}, %[[COND]])
#id2 = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d0)>
func.func @ties(%a: memref<?x8xf32>, %b: memref<?xf32>, %out: memref<4x8xf32>,
                %c: memref<?xf32>, %d: memref<?xf32>, %e: memref<?xf32>,
                %cond: i1)
    attributes {llvm.emit_c_interface} {
  linalg.generic {indexing_maps = [#id2, #row, #id2],
                  iterator_types = ["parallel", "parallel"]}
      ins(%a, %b : memref<?x8xf32>, memref<?xf32>) outs(%out : memref<4x8xf32>) {
  ^bb0(%va: f32, %vb: f32, %vo: f32):
    %s = arith.addf %va, %vb : f32
    linalg.yield %s : f32
  }
  memref.copy %c, %d : memref<?xf32> to memref<?xf32>
  scf.if %cond {
    memref.copy %c, %e : memref<?xf32> to memref<?xf32>
  }
  return
}

// -----

// No twin: private, no C interface, non-identity layout, declaration; and
// none for a twin or a function that has one already.

// CHECK-LABEL: func.func private @private_fn
// CHECK-NOT: _checked
func.func private @private_fn(%x: memref<4xf32>) attributes {llvm.emit_c_interface} {
  return
}
func.func @no_interface(%x: memref<4xf32>) {
  return
}
func.func @strided(%x: memref<4xf32, strided<[2]>>) attributes {llvm.emit_c_interface} {
  return
}
func.func private @decl(%x: memref<4xf32>) attributes {llvm.emit_c_interface}

// -----

// The name is taken: no twin.
// CHECK-LABEL: func.func @has_twin(
// CHECK-NOT: strided
func.func @has_twin(%x: memref<4xf32>) attributes {llvm.emit_c_interface} {
  return
}
func.func @has_twin_checked(%x: memref<4xf32>) -> i32 {
  %c0 = arith.constant 0 : i32
  return %c0 : i32
}
