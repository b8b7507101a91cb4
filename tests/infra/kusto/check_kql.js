// Parse and semantically analyze KQL with Microsoft's Kusto language service
// (npm @kusto/language-service-next, the same engine the Azure portal editor uses).
//
// stdin:  {"packageDir": "...", "database": "name",
//          "tables": {"requests": "(timestamp:datetime, name:string, ...)", ...},
//          "queries": [{"name": "...", "text": "..."}]}
// stdout: [{"name": "...", "diagnostics": [{"code", "severity", "message", "start", "length"}]}]
// Exit status 0 when the input was processed (diagnostics are data, not a crash).
"use strict";
const fs = require("fs");
const path = require("path");

const input = JSON.parse(fs.readFileSync(0, "utf8"));
// The bridge is a Bridge.NET build: it installs the globals `Bridge` and `Kusto`.
require(path.join(input.packageDir, "bridge.min.js"));
require(path.join(input.packageDir, "Kusto.Language.Bridge.min.js"));
const K = Kusto.Language;

const tables = Object.entries(input.tables).map(
  ([name, schema]) => new K.Symbols.TableSymbol.$ctor7(name, schema, null)
);
const database = new K.Symbols.DatabaseSymbol.$ctor2(input.database, null, tables);
const globals = K.GlobalState.Default.WithDatabase(database);

const results = input.queries.map(({ name, text }) => {
  const code = K.KustoCode.ParseAndAnalyze(text, globals);
  const diagnostics = [];
  const list = code.GetDiagnostics();
  for (let i = 0; i < list.Count; i++) {
    const d = list.getItem(i);
    diagnostics.push({ code: d.Code, severity: d.Severity, message: d.Message, start: d.Start, length: d.Length });
  }
  return { name, diagnostics };
});
process.stdout.write(JSON.stringify(results));
