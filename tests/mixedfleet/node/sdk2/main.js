'use strict';
// SDK 2.x line (sdk-node 0.2xx): stable HTTP conventions only.
const { BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');

require('../service').start({
  require,
  batchProcessor: (exporter) => new BatchSpanProcessor(exporter, { scheduledDelayMillis: 100 }),
});
