package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Client ID metadata documents (the MCP authorization spec of 2025-11-25,
// draft-ietf-oauth-client-id-metadata-document): a client_id that is an
// https URL names a JSON document, fetched by the authorization server,
// that holds the client's metadata (client_name, redirect_uris) with
// client_id equal to that URL. The client registers nothing.
//
// The fetch is a request to an address anyone can name, so it is fenced:
// https only, to public addresses only (the dialer refuses
// loopback, private, link-local, multicast and unspecified addresses after
// resolution, so DNS cannot point it inside), no redirects, 5 seconds, 16
// KiB. A document is fetched again at each authorization request.

const (
	cimdTimeout = 5 * time.Second
	cimdMaxSize = 16 << 10
)

// isMetadataURL reports whether clientID is meant as a client ID metadata
// document's URL.
func isMetadataURL(clientID string) bool { return strings.HasPrefix(clientID, "https://") }

// checkMetadataURL checks the form the spec requires: https, a path, no
// fragment, no credentials.
func checkMetadataURL(raw string) (*url.URL, error) {
	if len(raw) > maxURILen {
		return nil, errors.New("client_id is too long")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Fragment != "" || u.Path == "" || u.Path == "/" {
		return nil, errors.New("a URL client_id must be an https URL with a path, no fragment or credentials")
	}
	return u, nil
}

// publicOnly is the dialer's Control: it refuses any address that is not a
// public unicast one.
func publicOnly(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsMulticast() || ip.IsUnspecified() || ip.IsInterfaceLocalMulticast() {
		return fmt.Errorf("the client metadata document's host resolves to a non-public address %s", host)
	}
	return nil
}

// metadataClient is the HTTP client of the fetch.
func metadataClient() *http.Client {
	d := &net.Dialer{Timeout: cimdTimeout, Control: publicOnly}
	return &http.Client{
		Timeout: cimdTimeout,
		Transport: &http.Transport{
			DialContext:         d.DialContext,
			TLSHandshakeTimeout: cimdTimeout,
			MaxIdleConns:        -1,
			DisableKeepAlives:   true,
			Proxy:               nil,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return errors.New("redirects are not followed") },
	}
}

// parseMetadataDocument reads a client ID metadata document fetched from
// clientID.
func parseMetadataDocument(clientID string, body []byte) (*Client, error) {
	reg, err := parseRegistration(body)
	if err != nil {
		return nil, err
	}
	var id struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
		AuthMethod   string `json:"token_endpoint_auth_method"`
	}
	if err := json.Unmarshal(body, &id); err != nil {
		return nil, err
	}
	if id.ClientID != clientID {
		return nil, errors.New("the document's client_id is not its URL")
	}
	if id.ClientSecret != "" || (id.AuthMethod != "" && id.AuthMethod != "none") {
		return nil, errors.New("only public clients (token_endpoint_auth_method none) are supported")
	}
	name := reg.ClientName
	if name == "" {
		u, _ := url.Parse(clientID)
		name = u.Host
	}
	return &Client{ID: clientID, Name: name, RedirectURIs: reg.RedirectURIs}, nil
}

// fetchMetadataDocument fetches and checks the document of clientID.
func (s *Server) fetchMetadataDocument(ctx context.Context, clientID string) (*Client, error) {
	if _, err := checkMetadataURL(clientID); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cimdTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, clientID, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.fetch.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot fetch the client metadata document: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the client metadata document answered HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, cimdMaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read the client metadata document: %w", err)
	}
	if len(body) > cimdMaxSize {
		return nil, errors.New("the client metadata document is over 16 KiB")
	}
	c, err := parseMetadataDocument(clientID, body)
	if err != nil {
		return nil, fmt.Errorf("client metadata document: %w", err)
	}
	c.Created = s.o.Now().UTC()
	return c, nil
}
