    affinity {
      attribute = "${meta.gpu}"
      value     = "true"
      weight    = [[ 50 if serving.resources.memory > 1024 else 25 ]]
    }
