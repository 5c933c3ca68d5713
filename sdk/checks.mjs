// Helpers shared by the Node SDK tests: raw HTTP next to the client, counted
// checks, loading a CommonJS client from the install prefix, and comparisons
// of two reads that may straddle a deadline.
//
// A session's read-time status (and what follows from it: lists of live
// sessions, time remaining) changes when its deadline passes, and the test
// stream's sessions reach theirs every few seconds. Two reads compared for
// equality are retried a few times (`same`); a real mismatch repeats and fails.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import path from "node:path";

/** Counts passed checks; throws with the reason on the first failure. */
export class Checks {
  constructor(name) {
    this.name = name;
    this.count = 0;
  }

  ok(cond, what) {
    assert.ok(cond, `${this.name}: ${what}`);
    this.count++;
  }

  /** Checks that `produce()` resolves to two deep-equal values; returns the first. */
  async same(what, produce, tries = 5) {
    let a, b;
    for (let i = 0; i < tries; i++) {
      [a, b] = await produce();
      try {
        assert.deepStrictEqual(a, b);
        this.count++;
        return a;
      } catch {
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    assert.deepStrictEqual(a, b, `${this.name}: ${what}`);
  }

  /** Checks that `fn()` rejects; returns the error for more checks. */
  async rejects(fn, what) {
    try {
      await fn();
    } catch (e) {
      this.count++;
      return e;
    }
    assert.fail(`${this.name}: ${what} must throw`);
  }

  done(facts = "") {
    console.log(`${this.name}: ${this.count} checks passed${facts && ` (${facts})`}`);
  }
}

/** Plain HTTP to the ledger with a bearer key: {status, body}. */
export function raw(base, key) {
  return async (path, init = {}) => {
    const r = await fetch(base + path, {
      ...init,
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...(init.headers || {}) },
    });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null, headers: r.headers };
  };
}

/** `require` rooted at an install prefix (its node_modules). */
export function requireFrom(prefix) {
  return createRequire(path.join(prefix, "package.json"));
}
