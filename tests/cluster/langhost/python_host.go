// What a current pulumi CLI expects of the Python language host that the v3.68.0 host lacks
// (tests/cluster/build compiles this file beside that host's main.go; docs/e2e.md, "The
// language hosts"). Test infrastructure: never shipped.
//
//  1. The `virtualenv` option of Pulumi.yaml. A current CLI passes runtime options inside its
//     requests; the v3.68 host reads them only from its -virtualenv flag, which the CLI no longer
//     passes, so it ran `python3` from PATH. init() reads the option from the project file in
//     the working directory (the CLI starts the host there) and passes the flag, as older CLIs did.
//     Runtime options this host does not know (toolchain, typechecker), which the CLI passes as
//     flags when it starts the host for a plugin, are dropped.
//  2. RunPlugin (policy packs, source-based component providers). A current CLI describes the
//     plugin in the request's `info` (field 5: root and program directories, runtime options)
//     and `kind` (field 6), both unknown to the v3.68 protocol types, and leaves `program` empty:
//     the v3.68 host then ran the stack program. RunPlugin reads those fields from the request's
//     unknown bytes and runs the plugin in its own folder, with its own virtualenv.
//  3. InstallDependencies, which the CLI calls for a plugin folder before it runs it: the v3.68
//     host used its own (empty) virtualenv setting and made the folder itself a virtualenv. It
//     now takes the virtualenv from the request's `info` (field 3), and refuses when there is none.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"gopkg.in/yaml.v3"
)

func init() {
	args, explicit := []string{os.Args[0]}, false
	for _, arg := range os.Args[1:] {
		name := strings.SplitN(strings.TrimLeft(arg, "-"), "=", 2)[0]
		switch {
		case !strings.HasPrefix(arg, "-"):
		case name == "virtualenv":
			explicit = true // given explicitly: keep it
		case name == "toolchain" || name == "typechecker":
			// Options newer than this host, passed as flags when the CLI starts it for a plugin:
			// unknown flags would stop it. Its toolchain is pip (what prepull's files name).
			continue
		}
		args = append(args, arg)
	}
	os.Args = args
	cwd, err := os.Getwd()
	if explicit || err != nil {
		return
	}
	if venv := projectVirtualenv(cwd); venv != "" {
		os.Args = append([]string{os.Args[0], "-virtualenv=" + venv, "-root=" + cwd}, os.Args[1:]...)
	}
}

// projectVirtualenv: runtime.options.virtualenv of DIR's Pulumi.yaml (or .yml), "" if none.
func projectVirtualenv(dir string) string {
	for _, name := range []string{"Pulumi.yaml", "Pulumi.yml"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		var project struct {
			Runtime yaml.Node `yaml:"runtime"`
		}
		var runtime struct {
			Options map[string]any `yaml:"options"`
		}
		if yaml.Unmarshal(data, &project) != nil || project.Runtime.Kind != yaml.MappingNode {
			return ""
		}
		if project.Runtime.Decode(&runtime) != nil {
			return ""
		}
		venv, _ := runtime.Options["virtualenv"].(string)
		return venv
	}
	return ""
}

// pluginProgram: the plugin a current CLI asks RunPlugin to start (ProgramInfo and kind).
type pluginProgram struct {
	root, dir, entry, kind string
	options                map[string]any
}

// bytesFields calls visit with each length-delimited field of a message's wire bytes (the only
// kind ProgramInfo and the fields read here use; others are skipped); false on malformed bytes or
// when visit returns false.
func bytesFields(raw []byte, visit func(num protowire.Number, value []byte) bool) bool {
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			return false
		}
		raw = raw[n:]
		if typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, raw); n < 0 {
				return false
			}
			raw = raw[n:]
			continue
		}
		value, n := protowire.ConsumeBytes(raw)
		if n < 0 || !visit(num, value) {
			return false
		}
		raw = raw[n:]
	}
	return true
}

// pluginProgramOf decodes a ProgramInfo (field infoField) and a kind (field kindField, 0 for
// none) from a request's unknown bytes; false when the request carries no info (an older CLI).
func pluginProgramOf(req proto.Message, infoField, kindField protowire.Number) (*pluginProgram, bool) {
	p, found := &pluginProgram{}, false
	ok := bytesFields(req.ProtoReflect().GetUnknown(), func(num protowire.Number, value []byte) bool {
		switch num {
		case infoField:
			found = p.decodeInfo(value)
		case kindField:
			p.kind = string(value)
		}
		return true
	})
	return p, ok && found && p.dir != ""
}

// decodeInfo reads a ProgramInfo: root_directory (1), program_directory (2), entry_point (3),
// options (4, a google.protobuf.Struct).
func (p *pluginProgram) decodeInfo(raw []byte) bool {
	return bytesFields(raw, func(num protowire.Number, value []byte) bool {
		switch num {
		case 1:
			p.root = string(value)
		case 2:
			p.dir = string(value)
		case 3:
			p.entry = string(value)
		case 4:
			options := &structpb.Struct{}
			if proto.Unmarshal(value, options) != nil {
				return false
			}
			p.options = options.AsMap()
		}
		return true
	})
}

// RunPlugin starts a plugin as a current host does: a policy pack through the SDK's policy entry
// point (`python -m pulumi.policy <engine> <pack>`) in the pack's folder; a component provider
// by running its folder (`python <dir> <args>`, i.e. its __main__.py); each with the virtualenv
// its PulumiPolicy.yaml or PulumiPlugin.yaml names, resolved from its own folder and created from
// its requirements.txt when missing, as the v3.68 host does for a project.
func (host *pythonLanguageHost) RunPlugin(
	req *pulumirpc.RunPluginRequest, server pulumirpc.LanguageRuntime_RunPluginServer,
) error {
	p, ok := pluginProgramOf(req, 5, 6)
	if !ok {
		return host.runPluginV368(req, server)
	}
	plugin := host.withVirtualenvOf(p)
	if err := plugin.prepareVirtualEnvironment(server.Context(), p.dir); err != nil {
		return err
	}
	program := filepath.Join(p.dir, p.entry)
	env := req.Env
	if len(env) == 0 {
		env = os.Environ() // an empty list would leave the plugin with only the virtualenv's variables
	}
	// Unbuffered: the plugin announces its port on stdout, which is a pipe here.
	env = append(env, "PYTHONUNBUFFERED=1")
	run := &pulumirpc.RunPluginRequest{Pwd: req.Pwd, Program: program, Args: req.Args, Env: env}
	if p.kind == "analyzer" {
		run.Pwd, run.Program, run.Args = p.dir, "-m", append(append([]string{"pulumi.policy"}, req.Args...), program)
	}
	return plugin.runPluginV368(run, server)
}

// withVirtualenvOf: a copy of the host using the virtualenv that the program's runtime options name.
func (host *pythonLanguageHost) withVirtualenvOf(p *pluginProgram) *pythonLanguageHost {
	other := *host
	other.virtualenv, _ = p.options["virtualenv"].(string)
	other.virtualenvPath = resolveVirtualEnvironmentPath(p.root, other.virtualenv)
	return &other
}

// InstallDependencies installs into the virtualenv of the program the request describes; with no
// virtualenv named anywhere it installs nothing (the v3.68 host would make the folder a virtualenv).
func (host *pythonLanguageHost) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	deps := host
	if p, ok := pluginProgramOf(req, 3, 0); ok {
		deps = host.withVirtualenvOf(p)
		req = &pulumirpc.InstallDependenciesRequest{Directory: p.dir, IsTerminal: req.IsTerminal}
	}
	if deps.virtualenvPath == "" {
		return fmt.Errorf("%s: its project file names no virtualenv (runtime.options.virtualenv): nothing installed", req.Directory)
	}
	return deps.installDependenciesV368(req, server)
}
