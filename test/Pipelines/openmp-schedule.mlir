// RUN: moe-opt %s -moe-openmp-dynamic-schedule | FileCheck %s

// Every work-sharing loop gets schedule(dynamic); a loop that had a static
// schedule (with a chunk) keeps its chunk.
// CHECK-LABEL: func.func @panels
// CHECK:         omp.wsloop schedule(dynamic) {
// CHECK:         omp.wsloop schedule(dynamic = %{{.+}} : i32) {
func.func @panels(%n: index, %out: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %chunk = arith.constant 4 : i32
  %v = arith.constant 1.0 : f32
  omp.parallel {
    omp.wsloop {
      omp.loop_nest (%i) : index = (%c0) to (%n) step (%c1) {
        memref.store %v, %out[%i] : memref<?xf32>
        omp.yield
      }
    }
    omp.wsloop schedule(static = %chunk : i32) {
      omp.loop_nest (%i) : index = (%c0) to (%n) step (%c1) {
        memref.store %v, %out[%i] : memref<?xf32>
        omp.yield
      }
    }
    omp.terminator
  }
  return
}
