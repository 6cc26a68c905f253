// Package supervisor runs one agent process and owns everything about it
// that is not the protocol: its pipes, its process group, its stderr, its
// start timeout, its shutdown and the reason it ended.
//
// [Start] launches the command of a [Spec] in a process group of its own
// with exactly the environment the Spec lists: nothing of the broker's own
// environment is inherited, so secrets reach an agent only when a profile
// puts them there. The agent's stdin and stdout are exposed as an
// io.WriteCloser and an io.Reader for the ACP connection (one JSON object a
// line); its stderr is relayed line by line into the injected logger with
// the session's attributes, each line bounded in length, and the last lines
// are kept as a tail for error reports.
//
// The caller runs the ACP handshake over the pipes and then calls
// [Process.MarkReady]. Until then a start timeout runs: if it fires, or the
// context given to Start ends, the process group is killed and the handshake
// reads EOF. A process that exits before MarkReady "exited early", and its
// [ExitError] carries the stderr tail that usually says why (a missing
// credential, a refused root user, a wrong Node version).
//
// [Process.Stop] shuts down in stages, in the manner of the Go MCP SDK's
// command transport: close stdin, wait, SIGTERM the group, wait, SIGKILL the
// group, because some adapters (Zed's codex-acp) ignore EOF. [Process.Kill]
// is immediate and idempotent. Whenever the agent itself exits, the rest of
// its process group is killed, so grandchildren (npx, node, the native
// binaries adapters spawn) never outlive it.
//
// [Process.Done] is closed once the process has been reaped and its stderr
// drained; [Process.ExitErr] then says why it ended.
//
// Because each agent has its own process group, a Ctrl-C at the broker's
// terminal does not reach it: the broker's shutdown must Stop its agents.
// If the broker itself is killed with SIGKILL its agents are orphaned (no
// parent-death signal is set: Go's Pdeathsig is tied to the forking
// thread); a restarted broker must find and stop them by their recorded
// process group IDs.
//
// The package is Linux-first: exit is observed with waitid(WNOWAIT) so
// that the group is never signalled after its ID could have been reused.
package supervisor
