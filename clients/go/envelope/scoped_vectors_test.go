package envelope_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"github.com/fieldseal/fieldseal/clients/go/envelope"
)

// The shared scope-keyed vectors, read in place.
var scopedVectorsFile = filepath.Join("..", "..", "..", "test", "vectors", "scoped.json")

type scopedVectors struct {
	Keys      map[string]map[string]string `json:"keys"`
	ScopeKeys []struct {
		Keyring     string `json:"keyring"`
		Scope       string `json:"scope"`
		Generation  uint32 `json:"generation"`
		DataKey     string `json:"data_key"`
		WrapVersion uint32 `json:"wrap_version"`
		WrappedHex  string `json:"wrapped_hex"`
	} `json:"scope_keys"`
	Valid []struct {
		Name        string `json:"name"`
		Keyring     string `json:"keyring"`
		Version     uint32 `json:"version"`
		Generation  uint32 `json:"generation"`
		Scope       scope  `json:"scope"`
		Field       string `json:"field"`
		Value       any    `json:"value"`
		NonceHex    string `json:"nonce_hex"`
		AADHex      string `json:"aad_hex"`
		ValueKeyHex string `json:"value_key_hex"`
		Envelope    string `json:"envelope"`
	} `json:"valid"`
	Invalid []struct {
		Name     string `json:"name"`
		Scope    scope  `json:"scope"`
		Field    string `json:"field"`
		Envelope string `json:"envelope"`
		Error    string `json:"error"`
	} `json:"invalid"`
}

func loadScopedVectors(t *testing.T) (*scopedVectors, envelope.StaticKeys, envelope.DataKeyLookup) {
	t.Helper()
	raw, err := os.ReadFile(scopedVectorsFile)
	if err != nil {
		t.Fatalf("reading the scoped vectors: %v", err)
	}
	var v scopedVectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("parsing the scoped vectors: %v", err)
	}
	keys := envelope.StaticKeys{}
	for keyring, versions := range v.Keys {
		keys[keyring] = map[uint32][]byte{}
		for version, material := range versions {
			n, _ := strconv.ParseUint(version, 10, 32)
			key, err := base64.StdEncoding.DecodeString(material)
			if err != nil {
				t.Fatal(err)
			}
			keys[keyring][uint32(n)] = key
		}
	}
	dataKeys := map[string][]byte{}
	for _, k := range v.ScopeKeys {
		key, err := base64.StdEncoding.DecodeString(k.DataKey)
		if err != nil {
			t.Fatal(err)
		}
		dataKeys[k.Keyring+"\x00"+k.Scope+"\x00"+strconv.Itoa(int(k.Generation))] = key
	}
	lookup := func(keyring, scope string, generation uint32) ([]byte, error) {
		return dataKeys[keyring+"\x00"+scope+"\x00"+strconv.Itoa(int(generation))], nil
	}
	return &v, keys, lookup
}

func TestOpensScopedVectors(t *testing.T) {
	v, keys, dataKeys := loadScopedVectors(t)
	if len(v.Valid) < 4 || len(v.Invalid) < 10 {
		t.Fatalf("too few scoped vectors")
	}
	for _, c := range v.Valid {
		t.Run(c.Name, func(t *testing.T) {
			got, err := envelope.OpenScoped(c.Envelope, keys, dataKeys, c.Scope.String(), c.Field)
			if err != nil {
				t.Fatalf("OpenScoped: %v", err)
			}
			if !reflect.DeepEqual(got, c.Value) {
				t.Fatalf("OpenScoped = %#v, want %#v", got, c.Value)
			}
			aad, err := envelope.ScopedAAD(c.Keyring, c.Version, c.Generation, c.Scope.String(), c.Field)
			if err != nil || hex.EncodeToString(aad) != c.AADHex {
				t.Fatalf("ScopedAAD = %x (%v), want %s", aad, err, c.AADHex)
			}
			dataKey, _ := dataKeys(c.Keyring, c.Scope.String(), c.Generation)
			versionKey, _ := keys.Key(c.Keyring, c.Version)
			valueKey, err := envelope.DeriveValueKey(dataKey, versionKey)
			if err != nil || hex.EncodeToString(valueKey) != c.ValueKeyHex {
				t.Fatalf("DeriveValueKey = %x (%v), want %s", valueKey, err, c.ValueKeyHex)
			}
			env, err := envelope.ParseScoped(c.Envelope)
			if err != nil || hex.EncodeToString(env.Nonce) != c.NonceHex || env.Generation != c.Generation {
				t.Fatalf("ParseScoped = %+v (%v)", env, err)
			}
		})
	}
}

func TestRefusesInvalidScopedVectors(t *testing.T) {
	v, keys, dataKeys := loadScopedVectors(t)
	for _, c := range v.Invalid {
		t.Run(c.Name, func(t *testing.T) {
			got, err := envelope.OpenScoped(c.Envelope, keys, dataKeys, c.Scope.String(), c.Field)
			if err == nil {
				t.Fatalf("OpenScoped = %#v, want error %s", got, c.Error)
			}
			if code := envelope.Code(err); code != c.Error {
				t.Fatalf("error %v has code %q, want %q", err, code, c.Error)
			}
		})
	}
}

func TestUnwrapsScopedDataKeys(t *testing.T) {
	v, keys, _ := loadScopedVectors(t)
	for _, k := range v.ScopeKeys {
		wrapped, _ := hex.DecodeString(k.WrappedHex)
		versionKey, _ := keys.Key(k.Keyring, k.WrapVersion)
		got, err := envelope.UnwrapDataKey(versionKey, k.Keyring, k.WrapVersion, k.Scope, k.Generation, wrapped)
		want, _ := base64.StdEncoding.DecodeString(k.DataKey)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("UnwrapDataKey(%s g%d): %v", k.Scope, k.Generation, err)
		}
		if _, err := envelope.UnwrapDataKey(versionKey, k.Keyring, k.WrapVersion, "user:other", k.Generation, wrapped); err == nil {
			t.Fatalf("UnwrapDataKey for another scope succeeded")
		}
	}
}
