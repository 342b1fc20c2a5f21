'use strict';
/*
 * An Express service instrumented with the official OpenTelemetry JS SDK, shared by the SDK
 * lines in sdk1/, sdk2/ and sdk3/: each line's main.js passes its own `require` (so the
 * packages come from that line's node_modules) and how it builds a BatchSpanProcessor.
 *
 * Environment:
 *   PORT                          where to listen (127.0.0.1)
 *   OTEL_SERVICE_NAME             the resource's service.name
 *   OTEL_EXPORTER_OTLP_ENDPOINT   chainmap serve: http://host:4318 (HTTP) or :4317 (gRPC)
 *   OTEL_SEMCONV_STABILITY_OPT_IN http, http/dup or unset (read by instrumentation-http)
 *   FLEET_EXPORTER                proto (default), json or grpc
 *   FLEET_BAGGAGE_SPAN_PROCESSOR  1 adds @opentelemetry/baggage-span-processor for chain.ids
 *   FLEET_DUMP                    a file: every span handed to the exporter, one JSON a line
 *   FLEET_DOWNSTREAM              the Python service /quotes/:symbol calls (http://host:port)
 *   FLEET_TAG                     the path segment of that call: /trade/<tag>/<symbol>
 */
const fs = require('fs');

// The baggage entry chainmap's propagator reads and writes (chainmap_otel.tagging.active).
const CHAIN_BAGGAGE_KEY = 'chain.ids';
const EXPORTERS = {
  proto: '@opentelemetry/exporter-trace-otlp-proto',
  json: '@opentelemetry/exporter-trace-otlp-http',
  grpc: '@opentelemetry/exporter-trace-otlp-grpc',
};

function hrNanos(time) {
  return (BigInt(time[0]) * 1000000000n + BigInt(time[1])).toString();
}

function spanRecord(span) {
  const context = span.spanContext();
  const parent = span.parentSpanContext ? span.parentSpanContext.spanId : span.parentSpanId;
  const scope = span.instrumentationScope || span.instrumentationLibrary;
  return {
    traceId: context.traceId,
    spanId: context.spanId,
    traceState: context.traceState ? context.traceState.serialize() : '',
    parentSpanId: parent || '',
    name: span.name,
    kind: span.kind,
    startTimeUnixNano: hrNanos(span.startTime),
    endTimeUnixNano: hrNanos(span.endTime),
    status: { code: span.status.code, message: span.status.message || '' },
    attributes: span.attributes,
    events: span.events.map((e) => ({
      name: e.name,
      timeUnixNano: hrNanos(e.time),
      attributes: e.attributes || {},
    })),
    links: span.links.map((l) => ({
      traceId: l.context.traceId,
      spanId: l.context.spanId,
      traceState: l.context.traceState ? l.context.traceState.serialize() : '',
      attributes: l.attributes || {},
    })),
    resource: span.resource.attributes,
    scope: { name: scope.name, version: scope.version || '' },
  };
}

/** Writes what the real exporter is handed to FLEET_DUMP, then hands it on. */
class DumpingExporter {
  constructor(exporter, path) {
    this.exporter = exporter;
    this.path = path;
  }

  export(spans, resultCallback) {
    const lines = spans.map((span) => JSON.stringify(spanRecord(span)) + '\n');
    fs.appendFileSync(this.path, lines.join(''));
    this.exporter.export(spans, resultCallback);
  }

  shutdown() {
    return this.exporter.shutdown();
  }

  forceFlush() {
    return this.exporter.forceFlush ? this.exporter.forceFlush() : Promise.resolve();
  }
}

function startTracing(req, batchProcessor) {
  const { NodeSDK } = req('@opentelemetry/sdk-node');
  const { HttpInstrumentation } = req('@opentelemetry/instrumentation-http');
  const { ExpressInstrumentation } = req('@opentelemetry/instrumentation-express');
  const kind = process.env.FLEET_EXPORTER || 'proto';
  if (!EXPORTERS[kind]) {
    throw new Error(`FLEET_EXPORTER=${kind}: use one of ${Object.keys(EXPORTERS).join(', ')}`);
  }
  let exporter = new (req(EXPORTERS[kind]).OTLPTraceExporter)();
  if (process.env.FLEET_DUMP) {
    exporter = new DumpingExporter(exporter, process.env.FLEET_DUMP);
  }
  const spanProcessors = [];
  if (process.env.FLEET_BAGGAGE_SPAN_PROCESSOR === '1') {
    const { BaggageSpanProcessor } = req('@opentelemetry/baggage-span-processor');
    spanProcessors.push(new BaggageSpanProcessor((key) => key === CHAIN_BAGGAGE_KEY));
  }
  spanProcessors.push(batchProcessor(exporter));
  const sdk = new NodeSDK({
    spanProcessors,
    instrumentations: [
      new HttpInstrumentation({ ignoreIncomingRequestHook: (r) => r.url === '/health' }),
      new ExpressInstrumentation(),
    ],
  });
  sdk.start();
  return sdk;
}

function callDownstream(http, url) {
  return new Promise((resolve, reject) => {
    http
      .get(url, (response) => {
        let body = '';
        response.on('data', (chunk) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode, body }));
      })
      .on('error', reject);
  });
}

/** Spans of every kind, status and attribute type, for the field-by-field comparison. */
function recordShowcase(api) {
  const tracer = api.trace.getTracer('nodefleet-showcase', '1.2.3');
  const traceState = api.createTraceState('ot=th:8,vendor=x');
  const server = api.trace.getActiveSpan().spanContext();
  tracer.startActiveSpan('showcase', { kind: api.SpanKind.INTERNAL }, (span) => {
    span.setAttributes({
      'str.plain': 'AAPL',
      'str.unicode': 'Zürich ✓ 東京 🚀',
      'str.empty': '',
      'bool.true': true,
      'bool.false': false,
      'int.small': 42,
      'int.negative': -7,
      'int.max_safe': Number.MAX_SAFE_INTEGER,
      'double.pi': 3.14159,
      'double.negative': -0.5,
      'double.whole_2p53': 2 ** 53,
      'array.str': ['a', 'b', '<&>'],
      'array.bool': [true, false],
      'array.int': [1, 2, 3],
      'array.double': [1.5, -2.25],
      'array.empty': [],
    });
    // The JS OTLP/JSON exporter writes a whole double beyond int64 as {"intValue": 1e+21},
    // which the Collector (and chainmap) refuse with the whole request: only the binary
    // encodings carry it here.
    if ((process.env.FLEET_EXPORTER || 'proto') !== 'json') {
      span.setAttribute('double.whole_1e21', 1e21);
    }
    span.addEvent('order.checked', { 'check.passed': true, 'check.score': 0.75 });
    span.addEvent('order.note');
    span.addLink({
      context: { ...server, traceState },
      attributes: { 'link.reason': 'follows', 'link.count': 2 },
    });
    span.setStatus({ code: api.SpanStatusCode.ERROR, message: 'limit exceeded' });
    span.end();
  });
  tracer.startActiveSpan('publish quotes', { kind: api.SpanKind.PRODUCER }, (producer) => {
    producer.setAttribute('messaging.system', 'kafka');
    tracer.startSpan('consume quotes', {
      kind: api.SpanKind.CONSUMER,
      links: [{ context: producer.spanContext() }],
    }).end();
    producer.setStatus({ code: api.SpanStatusCode.OK });
    producer.end();
  });
}

function start({ require: req, batchProcessor }) {
  const sdk = startTracing(req, batchProcessor);
  const api = req('@opentelemetry/api');
  const http = req('http');
  const express = req('express');
  const traceId = () => api.trace.getActiveSpan().spanContext().traceId;

  const app = express();
  app.get('/quotes/:symbol', async (request, response) => {
    const downstream = process.env.FLEET_DOWNSTREAM;
    const tag = process.env.FLEET_TAG || 'none';
    const symbol = encodeURIComponent(request.params.symbol);
    const trade = downstream ? await callDownstream(http, `${downstream}/trade/${tag}/${symbol}`) : null;
    response.json({ trace_id: traceId(), symbol: request.params.symbol, trade });
  });
  app.delete('/orders/:id', (request, response) => {
    response.json({ trace_id: traceId(), cancelled: request.params.id });
  });
  app.get('/showcase', (request, response) => {
    recordShowcase(api);
    response.json({ trace_id: traceId() });
  });

  // /ping is answered before Express, so its server span has no http.route: under the old
  // conventions it carries only http.target (with the query string).
  const server = http.createServer((request, response) => {
    if (request.url === '/health') {
      response.end('ok');
    } else if (request.url.startsWith('/ping')) {
      response.setHeader('content-type', 'application/json');
      response.end(JSON.stringify({ trace_id: traceId(), pong: true }));
    } else {
      app(request, response);
    }
  });
  server.listen(Number(process.env.PORT), '127.0.0.1');

  const stop = () => {
    server.close();
    sdk.shutdown().finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

module.exports = { start };
