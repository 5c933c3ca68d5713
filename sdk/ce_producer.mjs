// Session events published with the CloudEvents JavaScript SDK's own Kafka
// binding (cloudevents 10.0.0: `Kafka.binary` / `Kafka.structured`), sent with
// kafkajs 2.2.4 (both pinned in scripts/sdk).
//
// Usage: node ce_producer.mjs BROKER TOPIC EVENTS_NDJSON NODE_PREFIX
//
// Each line of EVENTS_NDJSON is {"mode": "binary"|"structured", "event": {...}}
// where "event" is a structured-mode CloudEvent (attributes and "data"). The
// record is keyed by the session id through the `partitionkey` extension,
// which the binding maps to the Kafka key. The binding's message (key,
// headers, value, timestamp) is sent as is, but for two things in binary mode:
// `Kafka.binary` returns `value` as the raw `data` object, which kafkajs would
// write as "[object Object]", so it is serialized as JSON here; and its headers
// include one per unset attribute, valued `undefined` (`content-type` when no
// `datacontenttype`, `ce_dataschema`, `ce_schemaurl`, ...), on which kafkajs
// throws, so those are left out.
// Prints one JSON line: how many events were delivered per mode.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const [broker, topic, eventsPath, prefix] = process.argv.slice(2);
const require = createRequire(join(prefix, "package.json"));
const { CloudEvent, Kafka } = require("cloudevents");
const { Kafka: KafkaJS, Partitioners, logLevel } = require("kafkajs");

/** The headers without the ones the SDK left `undefined` (kafkajs cannot size
 * an undefined header value and throws). */
function defined(headers) {
  return Object.fromEntries(Object.entries(headers).filter(([, v]) => v !== undefined && v !== null));
}

function message(mode, event) {
  const ce = new CloudEvent({ ...event, partitionkey: event.subject });
  switch (mode) {
    case "binary": {
      const m = Kafka.binary(ce);
      const value =
        typeof m.value === "string" || Buffer.isBuffer(m.value) || m.value == null
          ? m.value
          : JSON.stringify(m.value);
      return { key: m.key, value, headers: defined(m.headers), timestamp: m.timestamp };
    }
    case "structured": {
      const m = Kafka.structured(ce);
      return { key: m.key, value: m.value, headers: m.headers, timestamp: m.timestamp };
    }
    default:
      throw new Error(`unknown mode ${mode}`);
  }
}

const lines = readFileSync(eventsPath, "utf8")
  .split("\n")
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l));

const kafka = new KafkaJS({
  clientId: "ce-producer-js",
  brokers: [broker],
  logLevel: logLevel.ERROR,
  retry: { retries: 8 },
});
const producer = kafka.producer({
  createPartitioner: Partitioners.DefaultPartitioner,
  allowAutoTopicCreation: false,
});
await producer.connect();
const sent = {};
try {
  // One send per record, in order: a session's events stay ordered.
  for (const { mode, event } of lines) {
    await producer.send({ topic, acks: -1, messages: [message(mode, event)] });
    sent[mode] = (sent[mode] ?? 0) + 1;
  }
} finally {
  await producer.disconnect();
}
console.log(JSON.stringify({ sdk: "cloudevents (npm)", sent }));
