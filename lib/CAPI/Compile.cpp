//===- Compile.cpp - Running moe pipelines from C ---------------*- C++ -*-===//
//
// This file implements the pipeline and compile entry points of the C API
// over moe::runPipeline and moe::compileToSharedLibrary.
//
//===----------------------------------------------------------------------===//

#include "moe-c/Compile.h"

#include "moe/InitAllDialects.h"
#include "moe/Pipelines/Compile.h"

#include "mlir/CAPI/IR.h"
#include "mlir/CAPI/Support.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

using namespace mlir;

static void report(const std::string &text, MlirStringCallback callback,
                   void *userData) {
  if (callback && !text.empty())
    callback(mlirStringRefCreate(text.data(), text.size()), userData);
}

MlirLogicalResult moeRunPassPipeline(MlirModule module, MlirStringRef pipeline,
                                     MlirStringCallback diagnostics,
                                     void *userData) {
  std::string text;
  LogicalResult result =
      moe::runPipeline(unwrap(module), unwrap(pipeline), text);
  report(text, diagnostics, userData);
  return wrap(result);
}

MlirLogicalResult moeCompileToSharedLibrary(MlirStringRef moduleText,
                                            MlirStringRef options,
                                            MlirStringRef outputPath,
                                            MlirStringCallback diagnostics,
                                            void *userData) {
  std::string text;
  auto finish = [&](LogicalResult result) {
    report(text, diagnostics, userData);
    return wrap(result);
  };
  auto pipelineOptions = std::make_unique<moe::CPUPipelineOptions>();
  std::string optionErrors;
  llvm::raw_string_ostream optionStream(optionErrors);
  if (failed(pipelineOptions->parseFromString(unwrap(options), optionStream))) {
    text = "error: invalid options for 'moe-cpu-pipeline': '" +
           unwrap(options).str() + "': " + optionErrors + "\n";
    return finish(failure());
  }

  DialectRegistry registry;
  moe::registerAllDialects(registry);
  MLIRContext context(registry);
  OwningOpRef<ModuleOp> module;
  {
    // Parse errors go to the same string as the pipeline's diagnostics.
    std::string parseText;
    llvm::raw_string_ostream os(parseText);
    ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
      os << diag.getLocation() << ": error: " << diag << "\n";
      return success();
    });
    module = parseSourceString<ModuleOp>(unwrap(moduleText),
                                         ParserConfig(&context), "layer");
    text += parseText;
  }
  if (!module)
    return finish(failure());
  return finish(moe::compileToSharedLibrary(*module, *pipelineOptions,
                                            unwrap(outputPath), text));
}
