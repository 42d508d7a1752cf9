job "x" {
  meta = { classes = "[[ ''.__class__.__mro__[1].__subclasses__() ]]" }
}
