package acp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"

	"github.com/sourcegraph/jsonrpc2"
)

// Errors callers branch on (match with errors.Is).
var (
	// ErrClosed: Close was called.
	ErrClosed = errors.New("acp: connection closed")
	// ErrPeerClosed: the agent closed its output (EOF on its stdout),
	// usually because the process exited.
	ErrPeerClosed = errors.New("acp: agent closed its output")
	// ErrLineTooLong: the agent sent a JSON message longer than
	// ConnOptions.MaxLineBytes; the connection fails with it.
	ErrLineTooLong = errors.New("acp: agent sent a message over the line limit")
	// ErrSubscriberTooSlow: OnUpdate did not keep up: the update queue
	// stayed full for ConnOptions.UpdateWait; the connection fails with it
	// rather than drop an update.
	ErrSubscriberTooSlow = errors.New("acp: update subscriber too slow")
	// ErrProtocolVersion: the agent answered initialize with a protocol
	// version other than 1.
	ErrProtocolVersion = errors.New("acp: unsupported protocol version")
	// ErrAuthRequired: the agent answered -32000 (authentication required).
	ErrAuthRequired = errors.New("acp: authentication required")
	// ErrNoAuthMethod: authentication is required but no method could be
	// chosen (no chooser, or the chooser refused).
	ErrNoAuthMethod = errors.New("acp: no authentication method chosen")
	// ErrMethodNotFound: the peer answered -32601.
	ErrMethodNotFound = errors.New("acp: method not found")
	// ErrResourceNotFound: -32002 (a file or session that does not exist).
	ErrResourceNotFound = errors.New("acp: resource not found")
	// ErrInvalidParams: -32602.
	ErrInvalidParams = errors.New("acp: invalid params")
	// ErrOutsideWorkDir: an fs request named a path outside the session's
	// working directory (answered -32602).
	ErrOutsideWorkDir = errors.New("acp: path outside the session's working directory")
	// ErrTooLarge: an fs read or write over its size limit (answered -32602).
	ErrTooLarge = errors.New("acp: content over the size limit")
	// ErrUnknownSession: a session ID this connection did not create or load.
	ErrUnknownSession = errors.New("acp: unknown session")
	// ErrInvalidMCPEntry: NewMCPServerEntry refused its input.
	ErrInvalidMCPEntry = errors.New("acp: invalid MCP server entry")
	// ErrNoModelCheck: a model option cannot be set because the
	// connection has no agent name to check it against the catalog.
	ErrNoModelCheck = errors.New("acp: no agent name for the model check")
)

// JSON-RPC error codes used by ACP.
const (
	CodeParseError       = -32700
	CodeInvalidRequest   = -32600
	CodeMethodNotFound   = -32601
	CodeInvalidParams    = -32602
	CodeInternalError    = -32603
	CodeAuthRequired     = -32000
	CodeResourceNotFound = -32002
)

// RPCError is an error response from the agent.
type RPCError struct {
	Method  string          // the method we called
	Code    int64           // JSON-RPC error code
	Message string          // the agent's message
	Data    json.RawMessage // the agent's data, if any
}

func (e *RPCError) Error() string {
	s := fmt.Sprintf("acp: %s: agent error %d: %s", e.Method, e.Code, e.Message)
	if len(e.Data) > 0 && len(e.Data) <= 512 {
		s += " " + string(e.Data)
	}
	return s
}

// Is maps well-known codes to the package's sentinels.
func (e *RPCError) Is(target error) bool {
	switch target {
	case ErrAuthRequired:
		return e.Code == CodeAuthRequired
	case ErrMethodNotFound:
		return e.Code == CodeMethodNotFound
	case ErrResourceNotFound:
		return e.Code == CodeResourceNotFound
	case ErrInvalidParams:
		return e.Code == CodeInvalidParams
	}
	return false
}

// wireError maps an error from our side of an agent's request to the
// JSON-RPC error we answer with. This is the one place where errors become
// JSON-RPC codes.
func wireError(err error) *jsonrpc2.Error {
	var rpc *RPCError
	code := int64(CodeInternalError)
	switch {
	case errors.As(err, &rpc):
		code = rpc.Code
	case errors.Is(err, ErrMethodNotFound):
		code = CodeMethodNotFound
	case errors.Is(err, ErrResourceNotFound), errors.Is(err, fs.ErrNotExist):
		code = CodeResourceNotFound
	case errors.Is(err, ErrInvalidParams), errors.Is(err, ErrOutsideWorkDir),
		errors.Is(err, ErrTooLarge), errors.Is(err, ErrUnknownSession):
		code = CodeInvalidParams
	case errors.Is(err, ErrAuthRequired):
		code = CodeAuthRequired
	}
	return &jsonrpc2.Error{Code: code, Message: err.Error()}
}

// fromWire turns an error from a call into an *RPCError when the agent
// answered with an error object.
func fromWire(method string, err error) error {
	var je *jsonrpc2.Error
	if errors.As(err, &je) {
		e := &RPCError{Method: method, Code: je.Code, Message: je.Message}
		if je.Data != nil {
			e.Data = append(json.RawMessage(nil), *je.Data...)
		}
		return e
	}
	return err
}
