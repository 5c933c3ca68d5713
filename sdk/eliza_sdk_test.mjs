// elizaOS's official client (@elizaos/api-client) reading from the ledger.
//
// Usage: node eliza_sdk_test.mjs BASE_URL API_KEY CLIENT_PREFIX
// (CLIENT_PREFIX: the directory whose node_modules holds the client).
import assert from "node:assert/strict";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [base, key, prefix] = process.argv.slice(2);
const entry = path.join(prefix, "node_modules/@elizaos/api-client/dist/index.js");
const { ElizaClient, ApiError } = await import(pathToFileURL(entry).href);

const client = ElizaClient.create({ baseUrl: base, apiKey: key });
let checks = 0;
const ok = (cond, what) => {
  assert.ok(cond, what);
  checks++;
};

const list = await client.sessions.listSessions();
ok(Array.isArray(list.sessions) && list.sessions.length > 0, "sessions listed");
ok(Number.isInteger(list.total) && list.total >= list.sessions.length, "total");
ok(Number.isInteger(list.stats.totalSessions) && Number.isInteger(list.stats.activeSessions), "stats");
for (const s of list.sessions) {
  ok(typeof s.sessionId === "string" && typeof s.agentId === "string", "ids");
  ok(!Number.isNaN(Date.parse(s.createdAt)) && !Number.isNaN(Date.parse(s.expiresAt)), "ISO times");
  ok(s.timeRemaining > 0 && typeof s.isNearExpiration === "boolean", "live with time remaining");
  ok(Number.isInteger(s.timeoutConfig.timeoutMinutes) && typeof s.timeoutConfig.autoRenew === "boolean", "timeoutConfig");
}

const one = await client.sessions.getSession(list.sessions[0].sessionId);
ok(one.sessionId === list.sessions[0].sessionId && one.userId === list.sessions[0].userId, "getSession");

try {
  await client.sessions.getSession("sess_does_not_exist");
  assert.fail("unknown id must throw");
} catch (e) {
  ok(e instanceof ApiError && e.status === 404 && e.code === "SESSION_NOT_FOUND", `404 ApiError, got ${e}`);
}

const health = await client.sessions.checkHealth();
ok(health.status === "healthy", "health status");
ok(health.activeSessions === list.stats.activeSessions, "health counts the live sessions");
ok(!Number.isNaN(Date.parse(health.timestamp)), "health timestamp");

const anon = ElizaClient.create({ baseUrl: base, apiKey: "wrong-key" });
try {
  await anon.sessions.listSessions();
  assert.fail("a wrong key must throw");
} catch (e) {
  ok(e instanceof ApiError && e.status === 401 && typeof e.code === "string", `401 ApiError, got ${e}`);
}

console.log(`@elizaos/api-client: ${checks} checks passed`);
