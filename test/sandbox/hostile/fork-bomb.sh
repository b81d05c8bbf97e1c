# HOSTILE TEST PROGRAM: starts up to $1 background processes (default 1000), printing a count after
# each, then "done". The sandbox's pids limit must bound it (under gVisor it ends the whole sandbox).
limit=${1:-1000}
n=0
while [ "$n" -lt "$limit" ]; do
  sleep 60 &
  n=$((n + 1))
  echo "started $n"
done
echo done
