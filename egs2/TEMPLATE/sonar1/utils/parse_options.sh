#!/usr/bin/env bash
# Parse --name value / --name=value options into shell variables that already exist
# (ESPnet/Kaldi convention; our own implementation). Unknown options are errors.
# Usage inside a script: `. utils/parse_options.sh` after defining defaults and `help_message`.
while [ $# -gt 0 ]; do
    case "$1" in
        --help|-h)
            echo "${help_message:-no help}"; exit 0 ;;
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
