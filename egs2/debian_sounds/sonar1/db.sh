# Where corpora live. debian_sounds needs no download location: local/data.sh fetches the
# Debian packages itself into ${SONAR_CACHE:-~/.cache/espnet2_sonar}/debs.
DEBIAN_SOUNDS_CACHE=${SONAR_CACHE:-${HOME}/.cache/espnet2_sonar}
