/*
 * The configuration behind the request-parser tests and its fuzz target
 * (tests/fuzz/fuzz_api.c): a pinned num_ctx and keep_alive in both forms,
 * a role mapped onto another backend tag, and a model with nothing pinned.
 */
#ifndef HARMONIC_FIXTURE_API_H
#define HARMONIC_FIXTURE_API_H

static const char *const fixture_api_conf =
    "hosts = ( { name = \"h\"; url = \"http://127.0.0.1:11434\"; memory_gb = 64.0; num_parallel = 8; } );\n"
    "tiers = ( { name = \"all\"; } );\n"
    "models = (\n"
    "  { name = \"qwen3:4b\"; tier = \"all\"; base_gb = 2.5; kv_gb = 0.3; num_ctx = 4096;\n"
    "    keep_alive = \"30m\"; placements = ( { host = \"h\"; parallel = 2; } ); },\n"
    "  { name = \"Coder\"; ollama = \"qwen2.5-coder:7b\"; tier = \"all\"; base_gb = 5.0; kv_gb = 0.5;\n"
    "    num_ctx = 8192; keep_alive = 300; placements = ( { host = \"h\"; parallel = 1; } ); },\n"
    "  { name = \"plain\"; tier = \"all\"; base_gb = 1.0; kv_gb = 0.1; num_ctx = 0;\n"
    "    placements = ( { host = \"h\"; parallel = 1; } ); }\n"
    ");\n";

#endif
