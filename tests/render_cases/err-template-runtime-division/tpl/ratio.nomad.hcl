job [[ job.id | hcl ]] {
  # canaries per allocation
  meta = { ratio = "[[ serving.count / update.canary ]]" }
}
