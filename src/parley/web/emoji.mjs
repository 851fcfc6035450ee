/* A compact built-in emoji list for the picker (shipped with the page: no CDN). Each line is
 * "<emoji> <name and search words>", in groups. Generated from Unicode names (Python's
 * unicodedata), with a few common aliases ("+1", "tada", "lol") added for search. */

const DATA = [
  ["Smileys", `
😀 grinning face
😁 grinning face with smiling eyes
😂 face with tears of joy joy laugh lol
😃 smiling face with open mouth
😄 smiling face with open mouth and smiling eyes
😅 smiling face with open mouth and cold sweat phew
😆 smiling face with open mouth and tightly-closed eyes
😇 smiling face with halo
😈 smiling face with horns
😉 winking face wink
😊 smiling face with smiling eyes happy
😋 face savouring delicious food
😌 relieved face
😍 smiling face with heart-shaped eyes love eyes
😎 smiling face with sunglasses
😏 smirking face
😐 neutral face
😑 expressionless face
😒 unamused face
😓 face with cold sweat
😔 pensive face
😕 confused face
😖 confounded face
😗 kissing face
😘 face throwing a kiss
😙 kissing face with smiling eyes
😚 kissing face with closed eyes
😛 face with stuck-out tongue
😜 face with stuck-out tongue and winking eye
😝 face with stuck-out tongue and tightly-closed eyes
😞 disappointed face
😟 worried face
😠 angry face
😡 pouting face
😢 crying face sad
😣 persevering face
😤 face with look of triumph
😥 disappointed but relieved face
😦 frowning face with open mouth
😧 anguished face
😨 fearful face
😩 weary face
😪 sleepy face
😫 tired face
😬 grimacing face
😭 loudly crying face cry sad
😮 face with open mouth
😯 hushed face
😰 face with open mouth and cold sweat
😱 face screaming in fear
😲 astonished face
😳 flushed face
😴 sleeping face
😵 dizzy face
😶 face without mouth
😷 face with medical mask
😸 grinning cat face with smiling eyes
😹 cat face with tears of joy
😺 smiling cat face with open mouth
😻 smiling cat face with heart-shaped eyes
😼 cat face with wry smile
😽 kissing cat face with closed eyes
😾 pouting cat face
😿 crying cat face
🙀 weary cat face
🙁 slightly frowning face
🙂 slightly smiling face smile
🙃 upside-down face
🙄 face with rolling eyes
🤐 zipper-mouth face
🤑 money-mouth face
🤒 face with thermometer
🤓 nerd face
🤔 thinking face hmm think
🤕 face with head-bandage
🤖 robot face
🤗 hugging face
🤘 sign of the horns
🤙 call me hand
🤚 raised back of hand
🤛 left-facing fist
🤜 right-facing fist
🤝 handshake
🤞 hand with index and middle fingers crossed
🤟 i love you hand sign
🤠 face with cowboy hat
🤡 clown face
🤢 nauseated face
🤣 rolling on the floor laughing rofl laugh lol
🤤 drooling face
🤥 lying face
🤦 face palm
🤧 sneezing face
🤨 face with one eyebrow raised
🤩 grinning face with star eyes
🤪 grinning face with one large and one small eye
🤫 face with finger covering closed lips
🤬 serious face with symbols covering mouth
🤭 smiling face with smiling eyes and hand covering mouth
🤮 face with open mouth vomiting
🤯 shocked face with exploding head
🥰 smiling face with smiling eyes and three hearts
🥱 yawning face
🥲 smiling face with tear
🥳 face with party horn and party hat
🥴 face with uneven eyes and wavy mouth
🥵 overheated face
🥶 freezing face
🥺 face with pleading eyes please
🧐 face with monocle
`],
  ["People", `
👆 white up pointing backhand index
👇 white down pointing backhand index
👈 white left pointing backhand index
👉 white right pointing backhand index
👊 fisted hand sign
👋 waving hand sign hi hello bye
👌 ok hand sign
👍 thumbs up sign +1 yes like ok
👎 thumbs down sign -1 no dislike
👏 clapping hands sign applause
👐 open hands sign
💪 flexed biceps
🙌 person raising both hands in celebration
🙏 person with folded hands thanks please pray
🙋 happy person raising one hand
🙆 face with ok gesture
🙅 face with no good gesture
🙇 person bowing deeply
🤷 shrug
✊ raised fist
✋ raised hand
✌️ victory hand
☝️ white up pointing index
👀 eyes look see
🧠 brain
👶 baby
🧑 adult
👩 woman
👨 man
👻 ghost
👽 extraterrestrial alien
💀 skull
💩 pile of poo
👿 imp
👹 japanese ogre
`],
  ["Hearts & symbols", `
❤️ heavy black heart love
🧡 orange heart
💛 yellow heart
💚 green heart
💙 blue heart
💜 purple heart
🖤 black heart
🤍 white heart
🤎 brown heart
💔 broken heart
💕 two hearts
💖 sparkling heart
💗 growing heart
💘 heart with arrow
💝 heart with ribbon
💞 revolving hearts
💓 beating heart
✅ white heavy check mark done yes check
❌ cross mark
⭐ white medium star
🌟 glowing star
✨ sparkles
⚡ high voltage sign
🔥 fire lit hot
💯 hundred points symbol hundred perfect
💥 collision symbol
💢 anger symbol
💤 sleeping symbol
💦 splashing sweat symbol
💨 dash symbol
❓ black question mark ornament
❗ heavy exclamation mark symbol
❔ white question mark ornament
❕ white exclamation mark ornament
🚨 police cars revolving light alert
🚧 construction sign
🚫 no entry sign
⛔ no entry
🆗 squared ok
🆕 squared new
🆙 squared up with exclamation mark
🆒 squared cool
💡 electric light bulb idea
🔔 bell
🔕 bell with cancellation stroke
📣 cheering megaphone
📢 public address loudspeaker
🎵 musical note
🎶 multiple musical notes
♻️ black universal recycling symbol
✔️ heavy check mark
✖️ heavy multiplication x
➕ heavy plus sign
➖ heavy minus sign
➡️ black rightwards arrow
⬆️ upwards black arrow
⬇️ downwards black arrow
🔄 anticlockwise downwards and upwards open circle arrows
🔝 top with upwards arrow above
`],
  ["Celebration & work", `
🎉 party popper tada party congrats
🎊 confetti ball
🎈 balloon
🎁 wrapped present
🎂 birthday cake
🎀 ribbon
🏆 trophy win
🏅 sports medal
🥇 first place medal
🎯 direct hit
🎲 game die
🎮 video game
🚀 rocket ship launch
🛸 flying saucer
💻 personal computer
🖥 desktop computer
📱 mobile phone
⌨️ keyboard
💾 floppy disk
📁 file folder
📂 open file folder
📄 page facing up
📅 calendar
📆 tear-off calendar
📈 chart with upwards trend
📉 chart with downwards trend
📊 bar chart
📋 clipboard
📌 pushpin
📍 round pushpin
📎 paperclip
📝 memo
📚 books
📖 open book
📦 package
📧 e-mail symbol
📨 incoming envelope
📬 open mailbox with raised flag
🔒 lock
🔓 open lock
🔑 key
🔧 wrench
🔨 hammer
🔩 nut and bolt
⚙️ gear
🧪 test tube
🔬 microscope
🔭 telescope
🔍 left-pointing magnifying glass
🔎 right-pointing magnifying glass
🐛 bug bug
⏰ alarm clock
⌛ hourglass
⏳ hourglass with flowing sand
💰 money bag
💸 money with wings
💳 credit card
📡 satellite antenna
🔋 battery
🔌 electric plug
🧰 toolbox
🧲 magnet
🛠 hammer and wrench
🏗 building construction
🚢 ship
🚗 automobile
🚕 taxi
🚌 bus
🚲 bicycle
🛴 scooter
✈️ airplane
🏠 house building
🏢 office building
🏫 school
🌍 earth globe europe-africa
🌎 earth globe americas
🗺 world map
🏁 chequered flag
🚩 triangular flag on post
🏳 waving white flag
`],
  ["Food", `
☕ hot beverage coffee
🍵 teacup without handle
🍺 beer mug beer
🍻 clinking beer mugs
🍷 wine glass
🍸 cocktail glass
🍹 tropical drink
🥂 clinking glasses
🥤 cup with straw
🥛 glass of milk
🍕 slice of pizza
🍔 hamburger
🍟 french fries
🌭 hot dog
🌮 taco
🌯 burrito
🍣 sushi
🍜 steaming bowl
🍝 spaghetti
🍛 curry and rice
🍱 bento box
🍙 rice ball
🍚 cooked rice
🍰 shortcake
🍪 cookie
🍩 doughnut
🍫 chocolate bar
🍬 candy
🍭 lollipop
🍦 soft ice cream
🍨 ice cream
🥧 pie
🥐 croissant
🥖 baguette bread
🥨 pretzel
🧀 cheese wedge
🥚 egg
🥓 bacon
🥗 green salad
🍎 red apple
🍏 green apple
🍊 tangerine
🍋 lemon
🍌 banana
🍉 watermelon
🍇 grapes
🍓 strawberry
🍒 cherries
🍑 peach
🍍 pineapple
🥥 coconut
🥑 avocado
🍅 tomato
🍆 aubergine
🥕 carrot
🌽 ear of maize
🌶 hot pepper
🥦 broccoli
🍄 mushroom
🥜 peanuts
`],
  ["Animals & nature", `
🐌 snail
🐍 snake
🐎 horse
🐏 ram
🐐 goat
🐑 sheep
🐒 monkey
🐓 rooster
🐔 chicken
🐕 dog
🐖 pig
🐗 boar
🐘 elephant
🐙 octopus
🐚 spiral shell
🐜 ant
🐝 honeybee
🐞 lady beetle
🐟 fish
🐠 tropical fish
🐡 blowfish
🐢 turtle
🐣 hatching chick
🐤 baby chick
🐥 front-facing baby chick
🐦 bird
🐧 penguin
🐨 koala
🐩 poodle
🐪 dromedary camel
🐫 bactrian camel
🐬 dolphin
🐭 mouse face
🐮 cow face
🐯 tiger face
🐰 rabbit face
🐱 cat face
🐲 dragon face
🐳 spouting whale
🐴 horse face
🐵 monkey face
🐶 dog face
🐷 pig face
🐸 frog face
🐹 hamster face
🐺 wolf face
🐻 bear face
🐼 panda face
🦊 fox face
🦄 unicorn face
🦋 butterfly
🦉 owl
🦅 eagle
🦆 duck
🦇 bat
🦈 shark
🦎 lizard
🦖 t-rex
🦕 sauropod
🌈 rainbow
☀️ black sun with rays
🌙 crescent moon
🌞 sun with face
🌝 full moon with face
☁️ cloud
⛅ sun behind cloud
🌧 cloud with rain
⛈ thunder cloud and rain
❄️ snowflake
⛄ snowman without snow
🌊 water wave
🌋 volcano
🌲 evergreen tree
🌳 deciduous tree
🌴 palm tree
🌵 cactus
🌷 tulip
🌸 cherry blossom
🌹 rose
🌺 hibiscus
🌻 sunflower
🌼 blossom
🍀 four leaf clover
🍁 maple leaf
🍂 fallen leaf
🍃 leaf fluttering in wind
🌱 seedling
🌿 herb
`],
];

/** [{name, emoji: [{char, name}]}]: the groups in order. */
export const GROUPS = DATA.map(([name, text]) => ({
  name,
  emoji: text.trim().split("\n").map((line) => {
    const space = line.indexOf(" ");
    return { char: line.slice(0, space), name: line.slice(space + 1) };
  }),
}));

export const ALL = GROUPS.flatMap((group) => group.emoji);

/** Emoji whose name has a word starting with each word of `query` (case-insensitive). */
export function searchEmoji(query, limit = 80) {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return ALL.slice(0, limit);
  const hits = ALL.filter((e) => {
    const names = e.name.split(/[\s-]+/);
    return words.every((w) => names.some((n) => n.startsWith(w)));
  });
  return hits.slice(0, limit);
}

const RECENT_MAX = 16;

/** The recently used list with `char` first (at most 16, no repeats). */
export function pushRecent(recent, char) {
  return [char, ...(Array.isArray(recent) ? recent : []).filter((c) => c !== char && typeof c === "string")].slice(
    0,
    RECENT_MAX,
  );
}
