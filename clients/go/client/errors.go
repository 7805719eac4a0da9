package client

import (
	"errors"

	"github.com/fieldseal/fieldseal/clients/go/envelope"
	fieldsealv1 "github.com/fieldseal/fieldseal/clients/go/gen/fieldseal/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Sentinels for the Fieldseal error codes only the server reports. The codes the offline opener shares
// (envelope_tampered, key_version_not_found, ...) match the envelope package's sentinels.
var (
	// ErrUnauthenticated: no token, or one the server does not know.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrPermissionDenied: the caller is known but may not do this.
	ErrPermissionDenied = errors.New("permission_denied")
	// ErrKeyVersionRetired: the value's key version is below the keyring's minimum decryption version.
	ErrKeyVersionRetired = errors.New("key_version_retired")
	// ErrStoreUnavailable: the server cannot reach its key store and has nothing cached for the call.
	ErrStoreUnavailable = errors.New("store_unavailable")
)

const (
	reasonMetadata    = "fieldseal-reason"
	requestIDMetadata = "x-request-id"
)

var errorsByCode = map[string]error{}

func init() {
	for _, e := range []error{
		ErrUnauthenticated, ErrPermissionDenied, ErrKeyVersionRetired, ErrStoreUnavailable,
		envelope.ErrInvalidArgument, envelope.ErrEnvelopeMalformed, envelope.ErrEnvelopeTampered,
		envelope.ErrKeyringNotFound, envelope.ErrKeyVersionNotFound, envelope.ErrTooLarge,
	} {
		errorsByCode[e.Error()] = e
	}
}

// Error is a failure the server reported: Fieldseal's stable error code (such as "envelope_tampered"),
// the gRPC status code and the server's message. errors.Is(err, envelope.ErrEnvelopeTampered) and
// errors.Is(err, ErrUnauthenticated) work as expected.
type Error struct {
	Code      string
	Status    codes.Code
	Message   string
	RequestID string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Unwrap returns the sentinel for Code, if there is one.
func (e *Error) Unwrap() error { return errorsByCode[e.Code] }

// GRPCStatus lets status.Code and status.FromError see the original gRPC status.
func (e *Error) GRPCStatus() *status.Status { return status.New(e.Status, e.Message) }

// fromStatus turns a failed call into *Error, taking Fieldseal's own code from the trailers when sent.
func fromStatus(err error, trailer metadata.MD) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	e := &Error{Code: connectCodeName(st.Code()), Status: st.Code(), Message: st.Message()}
	if reason := trailer.Get(reasonMetadata); len(reason) > 0 && reason[0] != "" {
		e.Code = reason[0]
	}
	if id := trailer.Get(requestIDMetadata); len(id) > 0 {
		e.RequestID = id[0]
	}
	return e
}

func fromFieldError(fe *fieldsealv1.FieldError) error {
	code := fe.GetReason()
	if code == "" {
		code = fe.GetCode()
	}
	return &Error{Code: code, Status: statusForName(fe.GetCode()), Message: fe.GetMessage()}
}

// connectCodeName spells a gRPC code the way Fieldseal's FieldError.code does: "invalid_argument".
func connectCodeName(c codes.Code) string {
	for name, code := range codeNames {
		if code == c {
			return name
		}
	}
	return "unknown"
}

func statusForName(name string) codes.Code {
	if c, ok := codeNames[name]; ok {
		return c
	}
	return codes.Unknown
}

var codeNames = map[string]codes.Code{
	"canceled": codes.Canceled, "unknown": codes.Unknown, "invalid_argument": codes.InvalidArgument,
	"deadline_exceeded": codes.DeadlineExceeded, "not_found": codes.NotFound, "already_exists": codes.AlreadyExists,
	"permission_denied": codes.PermissionDenied, "resource_exhausted": codes.ResourceExhausted,
	"failed_precondition": codes.FailedPrecondition, "aborted": codes.Aborted, "out_of_range": codes.OutOfRange,
	"unimplemented": codes.Unimplemented, "internal": codes.Internal, "unavailable": codes.Unavailable,
	"data_loss": codes.DataLoss, "unauthenticated": codes.Unauthenticated,
}
