// Validates prometheus-operator objects (ServiceMonitor, PrometheusRule) with
// the schemas of @kubernetes-models/prometheus-operator (generated from the
// operator's CRDs). Reads a JSON array of manifests from the file argument;
// prints one line per object, exits 1 when one is invalid.
import { readFileSync } from "node:fs";
import * as v1 from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

let bad = 0;
for (const m of JSON.parse(readFileSync(process.argv[2], "utf8"))) {
  const Model = m.apiVersion === "monitoring.coreos.com/v1" ? v1[m.kind] : undefined;
  const what = `${m.kind} ${m.metadata?.name}`;
  if (!Model) {
    console.log(`${what}: no schema`);
    bad++;
    continue;
  }
  try {
    new Model(m).validate();
    console.log(`${what}: ok`);
  } catch (e) {
    console.log(`${what}: ${e.message}`);
    bad++;
  }
}
process.exit(bad ? 1 : 0);
