// An ACP agent written with the official TypeScript SDK, after the SDK's
// example agent (src/examples/agent.ts, not shipped in the npm package):
// it streams a message, reports a tool call, asks for permission, and ends
// the turn. `read <path>` reads a file through the client's fs.
// It is an independent peer for the Go client's tests (acp/tspeer_test.go).
import { agent, methods, ndJsonStream } from "@agentclientprotocol/sdk";
import { Readable, Writable } from "node:stream";

const sessions = new Map();

const say = (client, sessionId, text) =>
  client.notify(methods.client.session.update, {
    sessionId,
    update: { sessionUpdate: "agent_message_chunk", content: { type: "text", text } },
  });

const app = agent({ name: "ts-example-agent" })
  .onRequest(methods.agent.initialize, () => ({
    protocolVersion: 1,
    agentCapabilities: { loadSession: false, mcpCapabilities: { http: true } },
    agentInfo: { name: "ts-example-agent", version: "0.0.1" },
    authMethods: [],
  }))
  .onRequest(methods.agent.session.new, ({ params }) => {
    const sessionId = `ts-${sessions.size + 1}`;
    sessions.set(sessionId, { cancelled: false, cwd: params.cwd, mcpServers: params.mcpServers });
    return { sessionId };
  })
  .onNotification(methods.agent.session.cancel, ({ params }) => {
    const s = sessions.get(params.sessionId);
    if (s) s.cancelled = true;
  })
  .onRequest(methods.agent.session.prompt, async ({ params, client }) => {
    const { sessionId } = params;
    const s = sessions.get(sessionId);
    s.cancelled = false;
    const text = params.prompt.filter((b) => b.type === "text").map((b) => b.text).join("\n");
    if (text.startsWith("read ")) {
      try {
        const r = await client.request(methods.client.fs.readTextFile, { sessionId, path: text.slice(5) });
        await say(client, sessionId, `read: ${r.content}`);
      } catch (e) {
        await say(client, sessionId, `read failed: ${e.message}`);
      }
      return { stopReason: "end_turn" };
    }
    await say(client, sessionId, "I'll help you with that.");
    const toolCall = {
      toolCallId: "call_1",
      title: "Modifying critical configuration file",
      kind: "edit",
      status: "pending",
      locations: [{ path: `${s.cwd}/config.json` }],
      rawInput: { path: `${s.cwd}/config.json`, content: '{"database": {"host": "new-host"}}' },
    };
    await client.notify(methods.client.session.update, { sessionId, update: { sessionUpdate: "tool_call", ...toolCall } });
    const perm = await client.request(methods.client.session.requestPermission, {
      sessionId,
      toolCall,
      options: [
        { kind: "allow_once", name: "Allow this change", optionId: "allow" },
        { kind: "reject_once", name: "Skip this change", optionId: "reject" },
      ],
    });
    if (perm.outcome.outcome === "cancelled" || s.cancelled) {
      return { stopReason: "cancelled" };
    }
    const allowed = perm.outcome.optionId === "allow";
    await client.notify(methods.client.session.update, {
      sessionId,
      update: { sessionUpdate: "tool_call_update", toolCallId: "call_1", status: allowed ? "completed" : "failed" },
    });
    await say(client, sessionId, allowed ? "Done: the configuration was updated." : "Skipped: permission was rejected.");
    return { stopReason: "end_turn" };
  });

app.connect(ndJsonStream(Writable.toWeb(process.stdout), Readable.toWeb(process.stdin)));
