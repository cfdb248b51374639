/* Who is calling: "Authorization: Bearer <key>" or "X-API-Key: <key>",
 * checked against the hashed keys; 401 without a valid key, 403 when the
 * key's scope does not cover the route. Keys are never logged. */
#include "serve/http.h"

#include <strings.h>

/* The key a client presents, or NULL. A Bearer token decides (a wrong one
 * is not retried with X-API-Key); another scheme (a proxy's Basic) is not
 * ours, so X-API-Key still counts. */
static const char *presented_key(struct MHD_Connection *c) {
    const char *auth =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (auth && !strncasecmp(auth, "Bearer ", 7)) {
        auth += 7;
        while (*auth == ' ') auth++;
        return *auth ? auth : NULL;
    }
    const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-API-Key");
    return key && *key ? key : NULL;
}

int http_authorize(moe_server *s, http_request *r) {
    http_auth need = r->route->auth;
    if (need == HTTP_AUTH_NONE || (need == HTTP_AUTH_METRICS && s->opt.public_metrics)) return 1;
    const char *key = presented_key(r->conn);
    int scopes = 0;
    const char *id = key ? serve_keys_check(s->keys, key, &scopes) : NULL;
    if (!id) {
        moe_metric_add(s->metrics.auth_failures, NULL, 1);
        if (!key)
            http_reply_error(r, 401, "Authorization", NULL, "Bearer realm=\"moe\"",
                             "an API key is required: send \"Authorization: Bearer <key>\"");
        else
            http_reply_error(r, 401, "Authorization", NULL,
                             "Bearer realm=\"moe\", error=\"invalid_token\"",
                             "the API key is not valid");
        return 0;
    }
    snprintf(r->key_id, sizeof r->key_id, "%s", id);
    if (need == HTTP_AUTH_TRAIN && !(scopes & SERVE_SCOPE_TRAIN)) {
        moe_metric_add(s->metrics.auth_failures, NULL, 1);
        http_reply_error(r, 403, "Authorization", NULL,
                         "Bearer realm=\"moe\", error=\"insufficient_scope\"",
                         "key '%s' has scope infer; %s %s needs a train-scope key", id, r->method,
                         r->route->pattern);
        return 0;
    }
    return 1;
}
