package deploy_test

import (
	"net/url"
	"slices"
	"testing"
)

// TestTollgateReachesPostgres checks that tollgate's TOLLGATE_POSTGRES_URL
// names the postgres service, at the port it exposes, with the user, password
// and database the postgres image creates, with the default password and with
// another one set.
func TestTollgateReachesPostgres(t *testing.T) {
	for _, env := range []map[string]string{nil, {"TOLLGATE_POSTGRES_PASSWORD": "s3cret"}} {
		p := loadProject(t, env)
		pg := service(t, p, postgresService)
		raw := service(t, p, tollgateService).Environment[postgresURLVar]
		if raw == nil {
			t.Fatalf("tollgate has no %s", postgresURLVar)
		}
		u, err := url.Parse(*raw)
		if err != nil {
			t.Fatalf("%s=%q: %v", postgresURLVar, *raw, err)
		}
		get := func(k string) string {
			if v := pg.Environment[k]; v != nil {
				return *v
			}
			return ""
		}
		pass, _ := u.User.Password()
		if u.Scheme != "postgres" || u.Hostname() != postgresService || u.Port() != "5432" ||
			u.User.Username() != get("POSTGRES_USER") || pass != get("POSTGRES_PASSWORD") || u.Path != "/"+get("POSTGRES_DB") {
			t.Errorf("env %v: %s=%q does not match the postgres service (%v)", env, postgresURLVar, *raw, pg.Environment)
		}
		if !slices.Contains(pg.Expose, "5432") {
			t.Errorf("postgres exposes %v, want 5432", pg.Expose)
		}
		if len(pg.Ports) != 0 {
			t.Errorf("postgres publishes %v; the records database stays on the compose network", pg.Ports)
		}
	}
}
