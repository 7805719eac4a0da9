// Package client calls the Fieldseal service over gRPC: seal and open fields with a bearer token, a
// client certificate (mTLS), or both.
package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	fieldsealv1 "github.com/fieldseal/fieldseal/clients/go/gen/fieldseal/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"
)

// Client is a connection to a Fieldseal server. It is safe for concurrent use.
type Client struct {
	conn *grpc.ClientConn
	// Service is the generated client, for the RPCs Client does not wrap (RotateKey, DescribeKey...).
	Service fieldsealv1.FieldsealServiceClient
}

type options struct {
	token    string
	tls      *tls.Config
	insecure bool
	dial     []grpc.DialOption
}

// Option configures New.
type Option func(*options)

// WithToken sends `authorization: Bearer <token>` with every call.
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithTLS sets the TLS configuration: RootCAs to trust a private CA, Certificates for a client
// certificate (mTLS). Without WithTLS or WithInsecure, the system roots are used.
func WithTLS(cfg *tls.Config) Option { return func(o *options) { o.tls = cfg } }

// WithInsecure speaks cleartext HTTP/2, for a server on loopback or behind a sidecar. A token is then
// sent in the clear: never use it across a network.
func WithInsecure() Option { return func(o *options) { o.insecure = true } }

// WithDialOptions passes extra options to grpc.NewClient (interceptors, keepalive, ...).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dial = append(o.dial, opts...) }
}

// New creates a client for target ("host:port", or any gRPC target). It does not connect until the
// first call.
func New(target string, opts ...Option) (*Client, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.insecure && o.tls != nil {
		return nil, errors.New("fieldseal client: WithTLS and WithInsecure exclude each other")
	}
	dial := []grpc.DialOption{}
	if o.insecure {
		dial = append(dial, grpc.WithTransportCredentials(insecure.NewCredentials()))
	} else {
		cfg := o.tls
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		dial = append(dial, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	}
	if o.token != "" {
		dial = append(dial, grpc.WithPerRPCCredentials(bearer{token: o.token, secure: !o.insecure}))
	}
	conn, err := grpc.NewClient(target, append(dial, o.dial...)...)
	if err != nil {
		return nil, err
	}
	return &Client{conn: conn, Service: fieldsealv1.NewFieldsealServiceClient(conn)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// EncryptResult is what EncryptFields returned: the sealed text per field, the key that sealed them, and
// the masked form of each field that has a format on the server (docs/masks.md).
type EncryptResult struct {
	Sealed     map[string]string
	Keyring    string
	KeyVersion uint32
	Masked     map[string]*fieldsealv1.MaskedValue
}

// EncryptFields seals every field under the primary version of keyring ("" means the server's default).
// Values are JSON-like Go values: string, float64 or other numbers, bool, nil, []any, map[string]any.
func (c *Client) EncryptFields(ctx context.Context, scope string, fields map[string]any, keyring string) (*EncryptResult, error) {
	s, err := protoScope(scope)
	if err != nil {
		return nil, err
	}
	req := &fieldsealv1.EncryptFieldsRequest{Keyring: keyring, Scope: s, Fields: map[string]*structpb.Value{}}
	for name, value := range fields {
		v, err := structpb.NewValue(value)
		if err != nil {
			return nil, fmt.Errorf("fieldseal client: field %q: %w", name, err)
		}
		req.Fields[name] = v
	}
	var trailer metadata.MD
	res, err := c.Service.EncryptFields(ctx, req, grpc.Trailer(&trailer))
	if err != nil {
		return nil, fromStatus(err, trailer)
	}
	return &EncryptResult{
		Sealed:     res.GetSealed(),
		Keyring:    res.GetKeyring(),
		KeyVersion: res.GetKeyVersion(),
		Masked:     res.GetMasked(),
	}, nil
}

// ComputeIndex returns the blind index of value for field without sealing it (docs/security.md, "Blind
// indexes"): under the primary key version of keyring ("" means the server's default), then with
// allVersions under each older version that still opens values. It needs the index:<field> scope.
func (c *Client) ComputeIndex(ctx context.Context, keyring, field, value string, allVersions bool) ([]string, error) {
	req := &fieldsealv1.ComputeIndexRequest{Keyring: keyring, Field: field, Value: value, AllVersions: allVersions}
	var trailer metadata.MD
	res, err := c.Service.ComputeIndex(ctx, req, grpc.Trailer(&trailer))
	if err != nil {
		return nil, fromStatus(err, trailer)
	}
	return res.GetIndexes(), nil
}

// DecryptField opens one sealed value and returns it as the JSON type it was sealed as, the same Go types
// envelope.Open returns (numbers are float64). Errors are *Error; errors.Is matches the envelope
// package's sentinels and this package's.
func (c *Client) DecryptField(ctx context.Context, scope, field, sealed string) (any, error) {
	s, err := protoScope(scope)
	if err != nil {
		return nil, err
	}
	var trailer metadata.MD
	req := &fieldsealv1.DecryptFieldRequest{Scope: s, Field: field, Sealed: sealed}
	res, err := c.Service.DecryptField(ctx, req, grpc.Trailer(&trailer))
	if err != nil {
		return nil, fromStatus(err, trailer)
	}
	return res.GetValue().AsInterface(), nil
}

// Item is one sealed value to open, with the field it was sealed for.
type Item struct {
	Field  string
	Sealed string
}

// Result is the outcome of one Item: Value when Err is nil.
type Result struct {
	Field      string
	Value      any
	Err        error
	KeyVersion uint32
}

// DecryptFields opens many sealed values of one scope. Each item gets its own Result, in request order;
// one bad item does not fail the rest. Problems with the request itself (credentials, scope) return an
// error.
func (c *Client) DecryptFields(ctx context.Context, scope string, items []Item) ([]Result, error) {
	s, err := protoScope(scope)
	if err != nil {
		return nil, err
	}
	req := &fieldsealv1.DecryptFieldsRequest{Scope: s}
	for _, item := range items {
		req.Items = append(req.Items, &fieldsealv1.SealedField{Field: item.Field, Sealed: item.Sealed})
	}
	var trailer metadata.MD
	res, err := c.Service.DecryptFields(ctx, req, grpc.Trailer(&trailer))
	if err != nil {
		return nil, fromStatus(err, trailer)
	}
	out := make([]Result, 0, len(res.GetResults()))
	for _, r := range res.GetResults() {
		result := Result{Field: r.GetField(), KeyVersion: r.GetKeyVersion()}
		if e := r.GetError(); e != nil {
			result.Err = fromFieldError(e)
		} else {
			result.Value = r.GetValue().AsInterface()
		}
		out = append(out, result)
	}
	return out, nil
}

func protoScope(scope string) (*fieldsealv1.Scope, error) {
	kind, id, ok := strings.Cut(scope, ":")
	switch {
	case ok && kind == "session":
		return &fieldsealv1.Scope{Id: &fieldsealv1.Scope_SessionId{SessionId: id}}, nil
	case ok && kind == "user":
		return &fieldsealv1.Scope{Id: &fieldsealv1.Scope_UserId{UserId: id}}, nil
	}
	return nil, &Error{Code: "invalid_argument", Message: "scope must be 'session:<sessionId>' or 'user:<userId>'"}
}

// bearer sends the token as per-RPC credentials.
type bearer struct {
	token  string
	secure bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

// RequireTransportSecurity is false only when the caller chose WithInsecure.
func (b bearer) RequireTransportSecurity() bool { return b.secure }
