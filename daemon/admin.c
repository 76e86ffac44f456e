/* admin: the answers of the admin endpoints (see admin.h). */
#include "admin.h"

#include "api.h"
#include "jsonx.h"
#include "request.h"
#include "status.h"

static struct admin_actions actions;

void
admin_init(const struct admin_actions *a)
{
	actions = *a;
}


void
admin_reload(const char *url, struct local_answer *out)
{
	if (daemon_status.draining || actions.reload == NULL) {
		api_answer_json(out, 503, jx_pack("{s:s}", "error", "harmonicd is shutting down"));
		return;
	}
	if (actions.reload() == 0)
		api_answer_json(out, 200, jx_pack("{s:s,s:I}", "status", "reloaded", "reloads", (json_int_t)daemon_status.reload.reloads));
	else
		api_answer_json(out, 422, jx_pack("{s:s,s:o}", "error", "configuration rejected; previous one kept", "detail",
		    jx_str(daemon_status.reload.last_error)));
}

void
admin_drain(const char *url, struct local_answer *out)
{
	api_answer_json(out, 202, jx_pack("{s:s,s:I}", "status", "draining", "open_requests",
	    (json_int_t)request_live_count()));
	if (actions.drain != NULL)
		actions.drain("POST /admin/drain");
}
