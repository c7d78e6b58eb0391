#!/usr/bin/env bash
# Parse --name value / --name=value options into shell variables that already exist
# (ESPnet/Kaldi convention; our own implementation). Unknown options are errors.
# Usage inside a script: `. utils/parse_options.sh` after defining defaults and `help_message`.
# --help / -h prints `help_message`, or calls the script's `usage` function when it defines
# one (sonar.sh: a header, then print_options lists every option with its value), and exits 0.
# It is handled when reached, after the options before it: `run.sh` passes its own settings
# first, so the values shown are run.sh's where it overrides the stage script's defaults.

# List the options block of FILE with each option's current value, so the help cannot drift
# from the variables: the lines after the "# ---...--- options" marker line, up to
# `help_message=`, each `name=value   # comment` (comment lines that follow an option
# continue its description). A value other than the block's own literal default (set by
# run.sh or an earlier option) is followed by a line giving that default.
#   print_options FILE
print_options() {
    local file=$1 in_block=false line name default comment cur shown re note=""
    re='^([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|'"'"'[^'"'"']*'"'"'|[^[:space:]#]*)[[:space:]]*(#[[:space:]]?(.*))?$'
    while IFS= read -r line || [ -n "${line}" ]; do
        if ! ${in_block}; then
            [[ "${line}" =~ ^#\ -+\ options ]] && in_block=true
            continue
        fi
        [[ "${line}" == help_message=* ]] && break
        if [[ "${line}" =~ ${re} ]]; then
            [ -z "${note}" ] || printf '  %-36s %s\n' "" "${note}"  # the previous option's default
            name=${BASH_REMATCH[1]}; default=${BASH_REMATCH[2]}; comment=${BASH_REMATCH[4]}
            default=${default#[\"\']}; default=${default%[\"\']}  # the literal, unquoted
            cur=${!name-}
            if [ -z "${cur}" ] || [[ "${cur}" =~ [[:space:]\"\'\$\`\\] ]]; then
                shown="\"${cur//\"/\\\"}\""
            else
                shown=${cur}
            fi
            note=""
            [ "${cur}" = "${default}" ] || note="(${file##*/} default: \"${default}\")"
            if [ $(( ${#name} + ${#shown} )) -le 31 ]; then
                printf '  --%-34s %s\n' "${name} ${shown}" "${comment}"
            else  # a long value: the description goes on the next line
                printf '  --%s\n  %-36s %s\n' "${name} ${shown}" "" "${comment}"
            fi
        elif [[ "${line}" =~ ^[[:space:]]+#[[:space:]]?(.*)$ ]]; then
            printf '  %-36s %s\n' "" "${BASH_REMATCH[1]}"
        fi
    done < "${file}"
    [ -z "${note}" ] || printf '  %-36s %s\n' "" "${note}"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --help|-h)
            if declare -F usage >/dev/null; then usage; else echo "${help_message:-no help}"; fi
            exit 0 ;;
        --*=*)
            _name="${1%%=*}"; _name="${_name#--}"; _value="${1#*=}"; shift ;;
        --*)
            _name="${1#--}"
            if [ $# -lt 2 ]; then echo "$0: option --${_name} needs a value" >&2; exit 1; fi
            _value="$2"; shift 2 ;;
        *) break ;;
    esac
    _name="${_name//-/_}"
    if ! declare -p "${_name}" >/dev/null 2>&1; then
        echo "$0: unknown option --${_name} (see --help)" >&2; exit 1
    fi
    printf -v "${_name}" '%s' "${_value}"
done
unset _name _value
