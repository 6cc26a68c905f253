package sessions

import "encoding/json"

// EventAgentExtension records a request or notification from the agent that
// the broker does not handle (Qwen Code's craft/drainMidTurnQueue request,
// answered -32601, and its qwen/notify/… notifications): {method, request,
// bytes, params?}. Params are kept when small.
const EventAgentExtension = "agent_extension"

// maxExtensionParams bounds the params an agent_extension event keeps.
const maxExtensionParams = 2048

// maxExtensionMethod bounds the method name recorded.
const maxExtensionMethod = 128

// onExtension runs on the connection's read goroutine: it only queues.
func (s *session) onExtension(method string, request bool, params json.RawMessage) {
	if len(method) > maxExtensionMethod {
		method = method[:maxExtensionMethod]
	}
	ev := map[string]any{"method": method, "request": request, "bytes": len(params)}
	if len(params) > 0 && len(params) <= maxExtensionParams && json.Valid(params) {
		ev["params"] = params
	}
	s.queueEvent(EventAgentExtension, ev)
}
