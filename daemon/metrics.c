/* metrics: placeholder until the statistics issue lands. */
#include "metrics.h"

#include <string.h>

#include "api.h"
#include "xmalloc.h"

void
metrics_answer(const char *url, struct local_answer *out)
{
	out->status = 501;
	out->ctype = "text/plain; charset=utf-8";
	out->body = xstrdup("not implemented yet");
	out->len = strlen(out->body);
}
