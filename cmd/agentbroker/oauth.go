package main

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/agentbroker/agentbroker/internal/oauth"
	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/tokens"
)

// oauthStateFile keeps the OAuth clients and connections (0600, in the
// data directory).
const oauthStateFile = "oauth-state.json"

// oauthServer is the authorization server of the broker's MCP resource
// (internal/oauth): MCP clients the broker did not launch sign in through
// it, with an admin's consent in the console.
func (c *config) oauthServer(svc *tokens.Service, st store.Store, publicURL string, log *slog.Logger) (*oauth.Server, error) {
	as, err := oauth.New(oauth.Options{
		Tokens:         svc,
		Projects:       st,
		Issuer:         publicURL,
		Resource:       publicURL + "/mcp",
		AllowedOrigins: c.AllowedOrigins,
		MaxLifetime:    c.TokenMaxTTL,
		StatePath:      filepath.Join(c.DataDir, oauthStateFile),
		Logger:         log,
	})
	if err != nil {
		return nil, fmt.Errorf("start the OAuth server: %w", err)
	}
	return as, nil
}
