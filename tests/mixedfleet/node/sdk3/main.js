'use strict';
// SDK 3.x line (sdk-node 0.30x, Node >= 22.15): BatchSpanProcessor takes one options object.
const { BatchSpanProcessor } = require('@opentelemetry/sdk-trace');

require('../service').start({
  require,
  batchProcessor: (exporter) => new BatchSpanProcessor({ exporter, scheduledDelayMillis: 100 }),
});
