'use strict';
// SDK 1.x line (sdk-node 0.5x): old HTTP conventions unless OTEL_SEMCONV_STABILITY_OPT_IN.
const { BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');

require('../service').start({
  require,
  batchProcessor: (exporter) => new BatchSpanProcessor(exporter, { scheduledDelayMillis: 100 }),
});
