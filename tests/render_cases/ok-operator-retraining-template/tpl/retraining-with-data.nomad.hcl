[% extends "retraining.nomad.hcl" %]
[% block train_extra %]
      artifact {
        source      = "s3::https://s3.amazonaws.com/training-data/[[ model.name ]]/latest.tgz"
        destination = "local/data"
      }
[% endblock %]
