#!/usr/bin/env bash
# The logic of the osc-harness GitHub Action (action.yml calls it), kept in
# one script so that it runs the same way outside a runner: give it the
# environment a runner gives (GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, GITHUB_ENV,
# GITHUB_PATH, RUNNER_TEMP, GITHUB_WORKSPACE) and the INPUT_* variables
# action.yml passes, and it does what the action does.
#
#   run.sh plan      the install root and cache key (outputs: install-root,
#                    cache-key, version)
#   run.sh install   an osc-harness of the wanted version: one already on
#                    PATH (or OSC_HARNESS_BIN) is used as it is; else
#                    `cargo install` of the published crate, else of the
#                    action's own checkout (outputs: bin)
#   run.sh run       `test`, then `fuzz` when asked; reports into a folder,
#                    a Markdown job summary; exits with the harness's code
#                    (outputs: exit-code, reports-dir, must-coverage)
set -uo pipefail
# List inputs are split into words; a pattern such as `mitm-*` is the
# harness's glob, never the shell's.
set -f

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
action_dir=${GITHUB_ACTION_PATH:-$(dirname "$here")}

die() {
    echo "::error title=osc-harness action::$*" >&2
    exit 2
}

# `name=value` into a runner file ($GITHUB_OUTPUT, $GITHUB_ENV); a value
# with a line break uses the heredoc form the runner reads.
put() {
    local file=$1 name=$2 value=$3
    [ -n "$file" ] || return 0
    if [[ $value == *$'\n'* ]]; then
        printf '%s<<OSC_HARNESS_EOF\n%s\nOSC_HARNESS_EOF\n' "$name" "$value" >>"$file"
    else
        printf '%s=%s\n' "$name" "$value" >>"$file"
    fi
}
output() { put "${GITHUB_OUTPUT:-}" "$1" "$2"; }

# The version of the action's own checkout, from its Cargo.toml.
own_version() {
    sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$action_dir/Cargo.toml" | head -n 1
}

wanted_version() {
    local v=${INPUT_VERSION:-}
    v=${v#v}
    if [ -z "$v" ]; then v=$(own_version); fi
    [ -n "$v" ] || die "no version: set the version input (the action's Cargo.toml names none)"
    printf '%s\n' "$v"
}

install_root() {
    printf '%s\n' "${OSC_HARNESS_ROOT:-${HOME:-${RUNNER_TEMP:-/tmp}}/.osc-harness}/$(wanted_version)"
}

# A digest of the action's source, so a cache built from one checkout is
# not reused for another of the same version number.
source_digest() {
    local sum
    if command -v sha256sum >/dev/null; then sum="sha256sum"; else sum="shasum -a 256"; fi
    (
        cd "$action_dir" || exit 1
        find Cargo.toml Cargo.lock build.rs src scenarios docs vectors -type f -print0 2>/dev/null |
            LC_ALL=C sort -z | xargs -0 $sum | $sum | cut -c1-16
    )
}

# The version an osc-harness binary reports (`osc-harness 0.1.0 (commit …)`).
version_of() {
    "$1" --version 2>/dev/null | awk 'NR == 1 { print $2 }'
}

# The binary to run: OSC_HARNESS_BIN, else osc-harness on PATH.
harness_bin() {
    if [ -n "${OSC_HARNESS_BIN:-}" ]; then
        printf '%s\n' "$OSC_HARNESS_BIN"
    else
        command -v osc-harness || true
    fi
}

plan() {
    local v root
    v=$(wanted_version) || exit 2
    root=$(install_root)
    output version "$v"
    output install-root "$root"
    output cache-key "osc-harness-${RUNNER_OS:-$(uname -s)}-${RUNNER_ARCH:-$(uname -m)}-$v-$(source_digest)"
}

install() {
    local v root bin have log
    v=$(wanted_version) || exit 2
    root=$(install_root)
    for bin in "$(harness_bin)" "$root/bin/osc-harness"; do
        [ -n "$bin" ] && [ -x "$bin" ] || continue
        have=$(version_of "$bin")
        if [ "$have" = "$v" ]; then
            echo "osc-harness $v already installed: $bin"
            use_bin "$bin"
            return 0
        fi
        echo "found $bin at version ${have:-unknown}, not $v"
    done
    command -v cargo >/dev/null ||
        die "cargo is not on PATH: install a Rust toolchain first (dtolnay/rust-toolchain@stable)"
    log=$(mktemp)
    echo "installing osc-harness $v from crates.io"
    cargo install --locked --root "$root" osc-harness --version "=$v" 2>"$log"
    local rc=$?
    cat "$log" >&2
    if [ "$rc" -eq 0 ]; then
        :
    elif grep -q "could not find" "$log" && [ "$v" = "$(own_version)" ]; then
        echo "osc-harness $v is not on crates.io: installing it from the action's checkout"
        cargo install --locked --root "$root" --path "$action_dir" || die "cargo install --path $action_dir failed"
    else
        rm -f "$log"
        die "cannot install osc-harness $v (the action's checkout is $(own_version))"
    fi
    rm -f "$log"
    use_bin "$root/bin/osc-harness"
}

use_bin() {
    output bin "$1"
    put "${GITHUB_ENV:-}" OSC_HARNESS_BIN "$1"
    if [ -n "${GITHUB_PATH:-}" ]; then dirname "$1" >>"$GITHUB_PATH"; fi
}

# Splits a list input (spaces, commas or lines) into words.
words() {
    tr ',\n' '  ' <<<"${1:-}"
}

is_true() {
    case "${1:-}" in true | True | TRUE | 1 | yes | on) return 0 ;; *) return 1 ;; esac
}

run() {
    local bin reports target test_code fuzz_code code summary coverage
    bin=$(harness_bin)
    [ -n "$bin" ] || die "osc-harness is not installed (run.sh install, or set OSC_HARNESS_BIN)"
    target=${INPUT_TARGET:-}
    [ -n "$target" ] || die "the target input is required (a URL, or self for the built-in reference server)"
    reports=${INPUT_REPORTS_DIR:-${RUNNER_TEMP:-${TMPDIR:-/tmp}}/osc-harness-reports}
    # Relative paths in the inputs are the workspace's, as in a run: step.
    cd "${GITHUB_WORKSPACE:-.}" || die "cannot enter the workspace ${GITHUB_WORKSPACE:-}"
    mkdir -p "$reports" || die "cannot create $reports"
    reports=$(cd "$reports" && pwd)
    output reports-dir "$reports"
    put "${GITHUB_ENV:-}" OSC_HARNESS_REPORTS "$reports"

    local -a flags=(--target "$target")
    [ -n "${INPUT_AGENT_ADDRESS:-}" ] && flags+=(--agent-address "$INPUT_AGENT_ADDRESS")
    [ -n "${INPUT_ACCESS_KEY:-}" ] && flags+=(--access-key "$INPUT_ACCESS_KEY")
    [ -n "${INPUT_AGENT_ID:-}" ] && flags+=(--agent-id "$INPUT_AGENT_ID")
    is_true "${INPUT_VIA_RELAY:-}" && flags+=(--via-relay)
    [ -n "${INPUT_CA_CERT:-}" ] && flags+=(--ca-cert "$INPUT_CA_CERT")

    local -a test=(test "${flags[@]}")
    local w
    for w in $(words "${INPUT_ONLY:-}"); do test+=(--only "$w"); done
    for w in $(words "${INPUT_SKIP:-}"); do test+=(--skip "$w"); done
    is_true "${INPUT_STRICT:-}" && test+=(--strict)
    if [ -n "${INPUT_EXPECTATIONS:-}" ]; then
        [ -f "$INPUT_EXPECTATIONS" ] || die "expectations file $INPUT_EXPECTATIONS not found (relative to the workspace)"
        test+=(--expect "$INPUT_EXPECTATIONS")
    fi
    # shellcheck disable=SC2206 # extra flags are whitespace-separated words
    test+=(${INPUT_TEST_ARGS:-})
    test+=(--report "$reports/osc-report.xml" --report "$reports/osc-report.json" --report "$reports/osc-report.html")

    echo "::group::osc-harness test"
    "$bin" "${test[@]}"
    test_code=$?
    echo "::endgroup::"
    code=$test_code

    local -a summary_args=(--test "$reports/osc-report.json" --test-exit "$test_code")
    local duration=${INPUT_FUZZ_DURATION:-0}
    if [ -n "$duration" ] && [ "$duration" != 0 ]; then
        if [ "$test_code" -ge 2 ]; then
            echo "fuzz skipped: test ended with exit $test_code"
        else
            local -a fuzz=(fuzz "${flags[@]}" --duration "$duration" --quiet
                --findings "$reports/fuzz-findings" --report "$reports/fuzz-report.html")
            # shellcheck disable=SC2206
            fuzz+=(${INPUT_FUZZ_ARGS:-})
            echo "::group::osc-harness fuzz"
            "$bin" "${fuzz[@]}" >"$reports/fuzz-summary.json"
            fuzz_code=$?
            echo "::endgroup::"
            summary_args+=(--fuzz "$reports/fuzz-summary.json" --fuzz-exit "$fuzz_code")
            if [ "$code" -eq 0 ]; then code=$fuzz_code; fi
        fi
    fi

    if summary=$("$bin" summary "${summary_args[@]}"); then
        coverage=$(grep -o 'MUST requirements exercised: [0-9]* of [0-9]*' <<<"$summary" | head -n 1)
    else
        summary="## osc-harness"$'\n\n'"The reports in $reports could not be summarised (see the job log)."
        coverage=""
    fi
    summary+=$'\n'"Reports (JUnit, JSON, HTML): \`$reports\`, uploaded as the job's artifact."$'\n'
    if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
        printf '%s\n' "$summary" >>"$GITHUB_STEP_SUMMARY"
    else
        printf '%s\n' "$summary"
    fi
    output must-coverage "$coverage"
    output exit-code "$code"
    exit "$code"
}

case "${1:-}" in
plan) plan ;;
install) install ;;
run) run ;;
*) die "usage: run.sh plan|install|run" ;;
esac
