"""Session events published with the CloudEvents Python SDK's own Kafka binding.

Usage: python ce_producer.py BROKER TOPIC EVENTS_NDJSON

Each line of EVENTS_NDJSON is {"mode": MODE, "event": {...}} where "event" is
a structured-mode CloudEvent (attributes and "data"). MODE picks the SDK API:

  binary, structured        cloudevents.core.bindings.kafka.to_binary /
                            to_structured (the 2.x API, JSON event format)
  v1-binary, v1-structured  cloudevents.v1.kafka.to_binary / to_structured
                            (the 1.x `cloudevents.kafka` API, kept in 2.x
                            under cloudevents.v1)

The KafkaMessage each returns (headers, key, value) is sent unchanged with
confluent-kafka's Producer, keyed by the session id (the event's subject).
Pinned in scripts/sdk: cloudevents 2.2.0, confluent-kafka 2.16.1. Prints one
JSON line: how many events were delivered per mode.
"""

import json
import sys
from datetime import datetime

from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from cloudevents.v1 import kafka as ce_kafka_v1
from cloudevents.v1.http import CloudEvent as CloudEventV1
from confluent_kafka import Producer

BROKER, TOPIC, EVENTS = sys.argv[1:4]


def split(event):
    attrs = {k: v for k, v in event.items() if k != "data"}
    return attrs, event.get("data")


def core_event(event):
    attrs, data = split(event)
    # The 2.x event types `time` as a datetime.
    attrs["time"] = datetime.fromisoformat(attrs["time"].replace("Z", "+00:00"))
    return CloudEvent(attrs, data)


def by_subject(event):
    return event.get_subject()


def message(mode, event):
    if mode == "binary":
        return ce_kafka.to_binary(core_event(event), JSONFormat(), key_mapper=by_subject)
    if mode == "structured":
        return ce_kafka.to_structured(core_event(event), JSONFormat(), key_mapper=by_subject)
    attrs, data = split(event)
    # The 1.x API keys the record by the `partitionkey` extension.
    attrs["partitionkey"] = attrs["subject"]
    ce = CloudEventV1(attrs, data)
    if mode == "v1-binary":
        return ce_kafka_v1.to_binary(ce)
    if mode == "v1-structured":
        return ce_kafka_v1.to_structured(ce)
    raise SystemExit(f"unknown mode {mode!r}")


def main():
    producer = Producer({"bootstrap.servers": BROKER, "acks": "all", "enable.idempotence": False})
    failures = []
    sent = {}

    def delivered(err, msg):
        if err is not None:
            failures.append(str(err))

    with open(EVENTS) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    for line in lines:
        m = message(line["mode"], line["event"])
        producer.produce(
            TOPIC,
            key=m.key,
            value=m.value,
            headers=list(m.headers.items()),
            on_delivery=delivered,
        )
        producer.poll(0)
        sent[line["mode"]] = sent.get(line["mode"], 0) + 1
    remaining = producer.flush(60)
    if remaining or failures:
        raise SystemExit(f"undelivered: {remaining} queued, failures: {failures[:5]}")
    print(json.dumps({"sdk": "cloudevents (PyPI)", "sent": sent}))


if __name__ == "__main__":
    main()
