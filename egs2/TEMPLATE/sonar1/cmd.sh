# Job backends (ESPnet convention: the stage script runs `${train_cmd} LOG COMMAND...`).
# local: run here. slurm: blocking srun per job (set SLURM_EXTRA for partition/account).
# Trainings go through utils/launch.sh (ESPnet's launcher) with cuda_cmd; the Slurm one is named
# utils/slurm.pl (a link to run_slurm.sh), the name the launcher needs for --num_nodes > 1.
cmd_backend=${cmd_backend:-local}
case "${cmd_backend}" in
    local) train_cmd="utils/run_local.sh"; cuda_cmd="utils/run_local.sh"; decode_cmd="utils/run_local.sh" ;;
    slurm) train_cmd="utils/run_slurm.sh"; cuda_cmd="utils/slurm.pl"; decode_cmd="utils/run_slurm.sh" ;;
    *) echo "cmd.sh: unknown cmd_backend=${cmd_backend} (local|slurm)" >&2; return 1 ;;
esac
