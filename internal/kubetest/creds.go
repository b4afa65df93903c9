package kubetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
)

// credentials are the files the API server's authentication flags name.
type credentials struct {
	token     string // bearer token of user "admin" in system:masters
	tokenFile string // --token-auth-file
	saPrivate string // --service-account-signing-key-file (EC PRIVATE KEY)
	saPublic  string // --service-account-key-file (PUBLIC KEY)
}

// writeCredentials generates a random bearer token and an ECDSA P-256
// service-account key pair (the API server signs tokens with ES256) into dir.
func writeCredentials(dir string) (credentials, error) {
	var c credentials
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return c, fmt.Errorf("generate token: %w", err)
	}
	c.token = hex.EncodeToString(raw)
	c.tokenFile = filepath.Join(dir, "tokens.csv")
	// Format: token,user,uid,"group1,group2".
	if err := os.WriteFile(c.tokenFile, []byte(c.token+",admin,1,system:masters\n"), 0o600); err != nil {
		return c, fmt.Errorf("write token file: %w", err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return c, fmt.Errorf("generate service-account key: %w", err)
	}
	priv, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return c, fmt.Errorf("marshal service-account key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return c, fmt.Errorf("marshal service-account public key: %w", err)
	}
	c.saPrivate = filepath.Join(dir, "sa.key")
	c.saPublic = filepath.Join(dir, "sa.pub")
	if err := os.WriteFile(c.saPrivate, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: priv}), 0o600); err != nil {
		return c, fmt.Errorf("write service-account key: %w", err)
	}
	if err := os.WriteFile(c.saPublic, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600); err != nil {
		return c, fmt.Errorf("write service-account public key: %w", err)
	}
	return c, nil
}
