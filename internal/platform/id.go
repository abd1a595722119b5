package platform

// ID names a marketplace: the one type for "which platform" everywhere
// (cases.platform, subjects, metrics, commands, the CLI, the sandbox).
type ID string

// Platforms.
const (
	Taobao      ID = "taobao"
	Alibaba1688 ID = "1688"
)

// IDs lists the platforms.
func IDs() []ID { return []ID{Taobao, Alibaba1688} }

// Valid reports whether id is a known platform.
func (id ID) Valid() bool { return id == Taobao || id == Alibaba1688 }

// IsTaobao reports whether id is Taobao (the profile's lookups take it).
func (id ID) IsTaobao() bool { return id == Taobao }

// The callback envelope's messagePlatform values, as documented (DOC, the
// message access manual): 0 Taobao, 1 1688. A documented fact, not a guess,
// so not a profile key.
const (
	MessagePlatformTaobao = 0
	MessagePlatform1688   = 1
)
