package envelope

import "errors"

// Sentinel errors, one per Fieldseal error code. Test with errors.Is; Code names the code of any error
// this package returns.
var (
	// ErrInvalidArgument: a scope, field name or key given to the opener is not valid.
	ErrInvalidArgument = errors.New("invalid_argument")
	// ErrEnvelopeMalformed: the sealed value is not a well-formed fs1 envelope (or legacy blob).
	ErrEnvelopeMalformed = errors.New("envelope_malformed")
	// ErrEnvelopeTampered: the sealed value does not authenticate: altered, or moved to another field,
	// scope or key version.
	ErrEnvelopeTampered = errors.New("envelope_tampered")
	// ErrKeyringNotFound: no key is known for the envelope's keyring.
	ErrKeyringNotFound = errors.New("keyring_not_found")
	// ErrKeyVersionNotFound: the keyring is known but the envelope's key version is not.
	ErrKeyVersionNotFound = errors.New("key_version_not_found")
	// ErrTooLarge: the sealed value is longer than any value Fieldseal writes.
	ErrTooLarge = errors.New("too_large")
	// ErrScopeKeyNotFound: no data key was given for a scope-keyed value's keyring, scope and generation
	// (a forgotten scope has none).
	ErrScopeKeyNotFound = errors.New("scope_key_not_found")
)

var sentinels = []error{
	ErrInvalidArgument, ErrEnvelopeMalformed, ErrEnvelopeTampered, ErrKeyringNotFound,
	ErrKeyVersionNotFound, ErrTooLarge, ErrScopeKeyNotFound,
}

// Error is an opener failure: a Fieldseal error code (one of the sentinels) and what was wrong. Messages
// never contain a plaintext value or key material.
type Error struct {
	Kind error
	Msg  string
}

func (e *Error) Error() string { return e.Kind.Error() + ": " + e.Msg }

// Unwrap lets errors.Is match the sentinel.
func (e *Error) Unwrap() error { return e.Kind }

// Code returns the Fieldseal error code of err ("envelope_tampered", ...), or "" when err is not one of
// this package's errors.
func Code(err error) string {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	return ""
}

func fail(kind error, msg string) error { return &Error{Kind: kind, Msg: msg} }
