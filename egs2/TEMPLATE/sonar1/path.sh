# Environment for the recipe: the project's venv must be active (scripts/venv.sh does it).
export PYTHONUNBUFFERED=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
if ! python -c "import espnet2_sonar" 2>/dev/null; then
    echo "path.sh: espnet2_sonar is not importable; run 'source scripts/venv.sh' from the repository root" >&2
    return 1
fi
