package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/agentbroker/agentbroker/tokens"
)

// internalMessage is all the model learns of a failure of ours.
const internalMessage = "internal error: the broker could not answer this call; try again later"

// toolHandler wraps d.run: scope check, argument validation, the call,
// the mapping of its error to an isError result (the one place domain
// errors become wire results), metrics and the observer. It never returns
// a Go error: those would become JSON-RPC errors, which are for protocol
// faults only.
func (s *Server) toolHandler(d *toolDef) server.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		start := s.now()
		c, ok := tokens.ClaimsFrom(ctx)
		out, err := s.runTool(ctx, d, c, ok, req)
		res, outcome, msg := s.result(ctx, d, c, out, err)
		s.record(ctx, d.name, c, start, outcome, msg)
		return res, nil
	}
}

func (s *Server) runTool(ctx context.Context, d *toolDef, c tokens.Claims, authenticated bool, req mcp.CallToolRequest) (out any, err error) {
	defer func() {
		if v := recover(); v != nil {
			s.log.LogAttrs(ctx, slog.LevelError, "mcp tool panicked", slog.String("tool", d.name),
				slog.String("panic", fmt.Sprint(v)), slog.String("stack", string(debug.Stack())), logAttrsForClaims(c))
			out, err = nil, errPanic
		}
	}()
	if !authenticated || !d.allowed(c) {
		return nil, forbidden("this token lacks scope " + string(d.scopes[0]) + " for tool " + d.name)
	}
	args, err := arguments(req)
	if err != nil {
		return nil, err
	}
	if err := d.input.validateArgs(args); err != nil {
		return nil, err
	}
	return d.run(ctx, &toolCall{s: s, claims: c, args: args, req: req})
}

var errPanic = errors.New("tool handler panicked")

// arguments returns the call's arguments as an object (nil for none).
func arguments(req mcp.CallToolRequest) (map[string]any, error) {
	switch a := req.Params.Arguments.(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return a, nil
	}
	return nil, argErrorf("arguments must be a JSON object")
}

// result turns what a handler returned into the call's result: the
// structured content and its JSON text on success, an isError result with a
// message for the model otherwise.
func (s *Server) result(ctx context.Context, d *toolDef, c tokens.Claims, out any, err error) (*mcp.CallToolResult, Outcome, string) {
	if err == nil {
		b, merr := json.Marshal(out)
		if merr == nil {
			return &mcp.CallToolResult{
				Content:           []mcp.Content{mcp.TextContent{Type: mcp.ContentTypeText, Text: string(b)}},
				StructuredContent: json.RawMessage(b),
			}, OutcomeOK, ""
		}
		err = fmt.Errorf("encode result: %w", merr)
	}
	var (
		te *toolError
		ae *argError
	)
	outcome, msg := OutcomeInternal, internalMessage
	switch {
	case errors.As(err, &te):
		outcome, msg = te.outcome, te.msg
		if outcome == OutcomeInternal { // the store cannot write: the operator must know
			s.log.LogAttrs(ctx, slog.LevelError, "mcp tool failed", slog.String("tool", d.name),
				slog.String("error", err.Error()), logAttrsForClaims(c))
		}
	case errors.As(err, &ae):
		outcome, msg = OutcomeInvalidArguments, "invalid arguments: "+ae.msg
	case ctx.Err() != nil:
		outcome, msg = OutcomeCancelled, "the call was cancelled"
	default:
		if !errors.Is(err, errPanic) {
			s.log.LogAttrs(ctx, slog.LevelError, "mcp tool failed", slog.String("tool", d.name),
				slog.String("error", err.Error()), logAttrsForClaims(c))
		}
	}
	return &mcp.CallToolResult{
		Content: []mcp.Content{mcp.TextContent{Type: mcp.ContentTypeText, Text: msg}},
		IsError: true,
	}, outcome, msg
}

// record counts a finished call and tells the observer.
func (s *Server) record(ctx context.Context, tool string, c tokens.Claims, start time.Time, outcome Outcome, msg string) {
	d := s.now().Sub(start)
	s.metrics.calls.With(tool, string(outcome)).Inc()
	s.metrics.duration.With(tool).Observe(d.Seconds())
	s.observer.ToolCalled(ctx, ToolCall{
		Project: c.Project, Session: c.Session, Agent: c.Agent, TokenID: c.ID,
		Tool: tool, Start: start, Duration: d, Outcome: outcome, Error: msg,
	})
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.LogAttrs(ctx, slog.LevelDebug, "mcp tool call", slog.String("tool", tool),
			slog.String("outcome", string(outcome)), slog.Duration("duration", d), logAttrsForClaims(c))
	}
}

// progress sends notifications/progress for req, when the client asked
// for it (a progressToken in _meta); otherwise it does nothing. The
// notification goes on the request's own SSE response (never the GET
// stream, see serveStream) and progress returns once it has been written
// there (see progressWriter), so that every notification sent before the
// handler returns reaches the client, in order. mcp-go drops a notification
// when the request's queue is full; progress waits for room instead.
func (s *Server) progress(ctx context.Context, req mcp.CallToolRequest, done, total float64, message string) error {
	if req.Params.Meta == nil || req.Params.Meta.ProgressToken == nil {
		return nil
	}
	params := map[string]any{"progressToken": req.Params.Meta.ProgressToken, "progress": done}
	if total > 0 {
		params["total"] = total
	}
	if message != "" {
		params["message"] = message
	}
	pw, _ := ctx.Value(progressWriterKey{}).(*progressWriter)
	var before int64
	if pw != nil {
		pw.mu.Lock()
		defer pw.mu.Unlock()
		before = pw.writes.Load()
	}
	wait := 100 * time.Microsecond
	for {
		err := s.mcp.SendNotificationToClient(ctx, "notifications/progress", params)
		if err == nil {
			break
		}
		if !errors.Is(err, server.ErrNotificationChannelBlocked) {
			return err
		}
		if err := sleepCtx(ctx, wait); err != nil {
			return err
		}
		wait = min(2*wait, 10*time.Millisecond)
	}
	if pw == nil {
		return nil
	}
	// Wait for the forwarder to write it; a stuck client cannot hold the
	// tool forever: after progressWriteTimeout the tool goes on.
	timeout := time.NewTimer(progressWriteTimeout)
	defer timeout.Stop()
	for pw.writes.Load() <= before {
		select {
		case <-pw.signal:
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout.C:
			s.log.LogAttrs(ctx, slog.LevelWarn, "progress notification not written in time")
			return nil
		}
	}
	return nil
}

// progressWriteTimeout bounds how long progress waits for a notification
// to be written to the client.
const progressWriteTimeout = 10 * time.Second

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
