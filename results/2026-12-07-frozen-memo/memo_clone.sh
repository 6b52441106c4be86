# Sourced by ab-sweep.sh and pair.sh: `memo_clone <folder> <mb>` makes <folder> a fresh clone of
# the project whose conf/model/mini_xception.yaml sets frozen_memo_mb to <mb> (a sweep's base
# config has no such key, so no override can set it for the trials alone), with the MTCNN cache
# linked in, and enters it.
export FERSWEEP_DATA=/work/shared/data/facial_expressions
memo_clone() {
  rm -rf "$1" && git clone -q /work/main "$1" && cd "$1" || exit 1
  ln -s /work/main/.cache .cache
  sed -i "s/^  frozen_memo_mb: [0-9]*/  frozen_memo_mb: $2/" conf/model/mini_xception.yaml
}
