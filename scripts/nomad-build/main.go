// Command nomad assembles the Nomad CLI and agent from Nomad's published Go
// module, so the local stack can run a real agent on a machine where no
// registry ships a Nomad binary. It mirrors the wiring of Nomad's own main
// package at the pinned tag (see go.mod); keep the side-effect imports first,
// because Nomad re-executes this binary as its executor, logmon and docker
// logger helpers and those packages take over in their init().
package main

import (
	_ "github.com/hashicorp/nomad/client/allocrunner/taskrunner/getter"
	_ "github.com/hashicorp/nomad/client/allocrunner/taskrunner/template/renderer"
	_ "github.com/hashicorp/nomad/client/logmon"
	_ "github.com/hashicorp/nomad/drivers/docker/docklog"
	_ "github.com/hashicorp/nomad/drivers/shared/executor"

	"fmt"
	"os"

	"github.com/hashicorp/cli"
	"github.com/hashicorp/nomad/command"
	"github.com/hashicorp/nomad/version"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	meta := new(command.Meta)
	meta.SetupUi(args)
	agentUI := &cli.BasicUi{Reader: os.Stdin, Writer: os.Stdout, ErrorWriter: os.Stderr}
	c := &cli.CLI{
		Name:       "nomad",
		Version:    version.GetVersion().FullVersionNumber(true),
		Args:       args,
		Commands:   command.Commands(meta, agentUI),
		HelpFunc:   cli.BasicHelpFunc("nomad"),
		HelpWriter: os.Stdout,
	}
	code, err := c.Run()
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error executing CLI: %s\n", err)
		return 1
	}
	return code
}
