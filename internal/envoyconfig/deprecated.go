package envoyconfig

import (
	"strconv"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/anypb"
)

// deprecated reports every set field, and every enum value in use, that the
// Envoy API marks deprecated, inside Anys too. Envoy warns about these at load
// time and turns them into errors in later releases.
func (l *linter) deprecated() {
	l.deprecatedIn(l.m.Bootstrap.ProtoReflect(), "")
}

func (l *linter) deprecatedIn(m protoreflect.Message, path string) {
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := UnpackAny(a)
		if err != nil {
			return // Validate reports it.
		}
		l.deprecatedIn(inner.ProtoReflect(), path)
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := joinPath(path, string(fd.Name()))
		if opts, ok := fd.Options().(*descriptorpb.FieldOptions); ok && opts.GetDeprecated() {
			l.add(name, RuleDeprecated, "%s is deprecated in the Envoy API", fd.FullName())
		}
		switch {
		case fd.IsList():
			list := v.List()
			for i := 0; i < list.Len(); i++ {
				switch {
				case fd.Message() != nil:
					elem := list.Get(i).Message()
					l.deprecatedIn(elem, name+elementKey(elem, i))
				case fd.Enum() != nil:
					l.deprecatedEnum(fd, list.Get(i).Enum(), name+"["+strconv.Itoa(i)+"]")
				}
			}
		case fd.IsMap():
			if fd.MapValue().Message() == nil {
				return true
			}
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				l.deprecatedIn(mv.Message(), name+key(k.String()))
				return true
			})
		case fd.Message() != nil:
			l.deprecatedIn(v.Message(), name)
		case fd.Enum() != nil:
			l.deprecatedEnum(fd, v.Enum(), name)
		}
		return true
	})
}

func (l *linter) deprecatedEnum(fd protoreflect.FieldDescriptor, n protoreflect.EnumNumber, path string) {
	ev := fd.Enum().Values().ByNumber(n)
	if ev == nil {
		return
	}
	if opts, ok := ev.Options().(*descriptorpb.EnumValueOptions); ok && opts.GetDeprecated() {
		l.add(path, RuleDeprecated, "enum value %s is deprecated in the Envoy API", ev.FullName())
	}
}
