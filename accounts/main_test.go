package accounts

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(workerEnv); mode != "" { // a Worker's child (worker_test.go)
		os.Exit(runTestWorker(mode))
	}
	goleak.VerifyTestMain(m)
}

// The sample accounts of the old distribution (PROTOCOL.md section 5),
// hashed with the old tool's N = 2^14, r = 8, p = 16.
var samples = []struct{ name, password, hash string }{
	{"righthand", "unlucky", "$s1$0e0810$gSWZo3ioKoQ5I8kCbc8A9A==$v3p1UXAOn9siRjdpgfxb+cDZtqwVobgQ8wZcDKZzT7WxsufEAv8EuhWA/xxAIzLJIp1HaRwbWm28Dz46nSxvZA=="},
	{"libprohibited", "feedme", "$s1$0e0810$UorbGUUleeaoXcBxk4UefQ==$X17rxyN7nVt7kNmFVB2P89+XeH7++DVvLOgrPlscLRijkivmPPpczSE/VGH8eDrnkCSkND+xYzixFdNsvAiXHw=="},
	{"zapper", "railgun", "$s1$0e0810$3V4SumpOHS9nybc3F1i/OQ==$oTbAFn7wgw0be1a5OMi//kFD3JK7DM3akxk2YJkHwVS2ug2j+reDcE2XSpRg+9CFOKuLjZqAb4vUNjubSFDLZQ=="},
}

// cheap are parameters that make a check take microseconds, for tests.
var cheap = Params{LogN: 4, R: 1, P: 1}

// mustHash returns a cheap hash of password.
func mustHash(t testing.TB, password string) string {
	t.Helper()
	s, err := NewHash(password, cheap)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
