// Validates Prometheus Operator objects (ServiceMonitor, PodMonitor, PrometheusRule)
// against the operator's CRD schemas, as packaged by @kubernetes-models. Reads one JSON
// array of objects on stdin; prints one line per object; exits 1 if any is invalid.
import { PodMonitor, PrometheusRule, ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const kinds = { PodMonitor, PrometheusRule, ServiceMonitor };
let input = "";
for await (const chunk of process.stdin) input += chunk;
let failed = false;
for (const doc of JSON.parse(input)) {
  const Kind = kinds[doc.kind];
  const name = `${doc.kind}/${doc.metadata?.name}`;
  if (!Kind || doc.apiVersion !== "monitoring.coreos.com/v1") {
    console.log(`FAIL ${name}: not a monitoring.coreos.com/v1 kind this checks`);
    failed = true;
    continue;
  }
  try {
    new Kind(doc).validate();
    console.log(`ok ${name}`);
  } catch (e) {
    console.log(`FAIL ${name}: ${e.message}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
