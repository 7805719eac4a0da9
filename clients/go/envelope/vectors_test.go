package envelope_test

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"github.com/fieldseal/fieldseal/clients/go/envelope"
)

// The shared test vectors: the contract every Fieldseal opener must meet. Read in place, never copied.
var vectorsFile = filepath.Join("..", "..", "..", "test", "vectors", "envelopes.json")

type scope struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

func (s scope) String() string { return s.Kind + ":" + s.ID }

type vectors struct {
	Keys  map[string]map[string]string `json:"keys"`
	Valid []struct {
		Name     string `json:"name"`
		Keyring  string `json:"keyring"`
		Version  uint32 `json:"version"`
		Scope    scope  `json:"scope"`
		Field    string `json:"field"`
		Value    any    `json:"value"`
		NonceHex string `json:"nonce_hex"`
		AADHex   string `json:"aad_hex"`
		Envelope string `json:"envelope"`
	} `json:"valid"`
	Invalid []struct {
		Name     string `json:"name"`
		Scope    scope  `json:"scope"`
		Field    string `json:"field"`
		Envelope string `json:"envelope"`
		Error    string `json:"error"`
	} `json:"invalid"`
	Legacy []struct {
		Name  string `json:"name"`
		Key   string `json:"key"`
		Label string `json:"label"`
		Field string `json:"field"`
		Blob  string `json:"blob"`
		Value string `json:"value"`
	} `json:"legacy"`
}

func loadVectors(t *testing.T) (*vectors, envelope.StaticKeys) {
	t.Helper()
	raw, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatalf("reading the shared vectors: %v", err)
	}
	var v vectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("parsing the shared vectors: %v", err)
	}
	keys := envelope.StaticKeys{}
	for keyring, versions := range v.Keys {
		keys[keyring] = map[uint32][]byte{}
		for version, material := range versions {
			n, err := strconv.ParseUint(version, 10, 32)
			if err != nil {
				t.Fatalf("vector key version %q: %v", version, err)
			}
			key, err := base64.StdEncoding.DecodeString(material)
			if err != nil {
				t.Fatalf("vector key %s v%s: %v", keyring, version, err)
			}
			keys[keyring][uint32(n)] = key
		}
	}
	return &v, keys
}

func TestVectorsHaveCasesOfEveryKind(t *testing.T) {
	v, _ := loadVectors(t)
	if len(v.Valid) < 10 || len(v.Invalid) < 10 || len(v.Legacy) < 1 {
		t.Fatalf("too few vectors: %d valid, %d invalid, %d legacy", len(v.Valid), len(v.Invalid), len(v.Legacy))
	}
}

func TestOpensValidVectors(t *testing.T) {
	v, keys := loadVectors(t)
	for _, c := range v.Valid {
		t.Run(c.Name, func(t *testing.T) {
			got, err := envelope.Open(c.Envelope, keys, c.Scope.String(), c.Field)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !reflect.DeepEqual(got, c.Value) {
				t.Fatalf("Open = %#v, want %#v", got, c.Value)
			}
			aad, err := envelope.AAD(c.Keyring, c.Version, c.Scope.String(), c.Field)
			if err != nil || hex.EncodeToString(aad) != c.AADHex {
				t.Fatalf("AAD = %x (%v), want %s", aad, err, c.AADHex)
			}
			env, err := envelope.Parse(c.Envelope)
			if err != nil || hex.EncodeToString(env.Nonce) != c.NonceHex {
				t.Fatalf("nonce = %x (%v), want %s", env.Nonce, err, c.NonceHex)
			}
		})
	}
}

func TestRefusesInvalidVectors(t *testing.T) {
	v, keys := loadVectors(t)
	for _, c := range v.Invalid {
		t.Run(c.Name, func(t *testing.T) {
			got, err := envelope.Open(c.Envelope, keys, c.Scope.String(), c.Field)
			if err == nil {
				t.Fatalf("Open = %#v, want error %s", got, c.Error)
			}
			if code := envelope.Code(err); code != c.Error {
				t.Fatalf("error %v has code %q, want %q", err, code, c.Error)
			}
		})
	}
}

func TestOpensLegacyVectors(t *testing.T) {
	v, _ := loadVectors(t)
	for _, c := range v.Legacy {
		t.Run(c.Name, func(t *testing.T) {
			key, err := base64.StdEncoding.DecodeString(c.Key)
			if err != nil {
				t.Fatal(err)
			}
			blob, err := envelope.ParseLegacyBlob(c.Blob)
			if err != nil || blob.KeyVersionLabel != c.Label {
				t.Fatalf("ParseLegacyBlob: label %v (%v), want %q", blob, err, c.Label)
			}
			got, err := envelope.OpenLegacyBlob(c.Blob, key, c.Field)
			if err != nil || got != c.Value {
				t.Fatalf("OpenLegacyBlob = %q (%v), want the vector's value", got, err)
			}
			if _, err := envelope.OpenLegacyBlob(c.Blob, key, "ssn"); !errors.Is(err, envelope.ErrEnvelopeTampered) {
				t.Fatalf("OpenLegacyBlob in another field: %v, want ErrEnvelopeTampered", err)
			}
		})
	}
}
